"""BiLSTM student (Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple
Neural Networks", arXiv 1903.12136; lineage: castorini/d-bert ``bi_rnn.py``, ``siamese_rnn.py``).

Single sentences: embedding -> dropout -> BiLSTM -> pooling over real tokens -> MLP head
(``Linear(2*hidden -> mlp_dim)``, ReLU, dropout, ``Linear(mlp_dim -> num_labels)``).
Pair tasks: the joint ``[CLS] a [SEP] b [SEP]`` encoding is split inside ``forward`` into
``a [SEP]`` and ``b [SEP]`` (the leading ``[CLS]`` is dropped so both segments look alike), both
are encoded by the same BiLSTM into ``u`` and ``v``, and the head reads
``[u, v, |u - v|, u * v]`` (width ``8*hidden``), as in Tang et al.

Where raykd departs from the paper:
- vocabulary: the teacher's WordPiece ids instead of a word vocabulary, so no tokenizer of its own;
- embeddings: initialised from the teacher's word-embedding matrix reduced to ``embedding_dim`` by
  PCA (``embedding_init: teacher``) or at random, instead of 300-d word2vec;
- pooling: max (or mean) over the real tokens' states by default, instead of the last states;
  ``attention`` is self-attentive pooling (a learned ``Linear(2*hidden -> 1)`` scores each real
  token's state, a softmax over the real tokens weighs them), the pooling of MKD's multi-task
  BiLSTM student (Liu et al. 2019, arXiv 1911.03588; :mod:`raykd.students.multitask`).
Padding never changes the result: sequences are packed (``pack_padded_sequence``) and pooling is
masked.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from raykd.domains import Domain, Fixed, ParamSpec, domain_values
from raykd.errors import RaykdInputError

__all__ = ["PARAMS", "BiLSTMStudent", "build", "check_space", "pair_segments", "split_pair", "teacher_embedding"]

PARAMS: dict[str, ParamSpec] = {
    "embedding_dim": ParamSpec(int, 128, "width of the word embeddings", low=8),
    "hidden_dim": ParamSpec(int, 128, "LSTM hidden units per direction", low=8),
    "num_layers": ParamSpec(int, 1, "stacked BiLSTM layers", low=1, high=2),
    "mlp_dim": ParamSpec(int, 128, "hidden units of the MLP classifier head", low=1),
    "dropout": ParamSpec(
        float, 0.1, "dropout on embeddings, between LSTM layers and in the head",
        low=0.0, high=1.0, high_open=True,
    ),
    "pooling": ParamSpec(
        str, "max", "pool token states over real tokens by max, mean or learned attention weights",
        choices=("max", "mean", "attention"),
    ),
    "embedding_init": ParamSpec(
        str, "teacher", "random embeddings, or the teacher's word embeddings reduced by PCA",
        choices=("random", "teacher"),
    ),
    "freeze_embeddings": ParamSpec(bool, False, "keep the embedding matrix fixed during training"),
}


class BiLSTMStudent(nn.Module):
    """BiLSTM classifier over teacher WordPiece ids (see the module docstring).

    Args:
        vocab_size, pad_token_id: the teacher tokenizer's vocabulary size and pad id.
        num_labels: output width (1 for regression).
        is_pair: split joint pair encodings and combine ``[u, v, |u-v|, u*v]``.
        embedding_dim, hidden_dim, num_layers, mlp_dim, dropout, pooling: see :data:`PARAMS`.
    """

    def __init__(
        self, *, vocab_size: int, pad_token_id: int, num_labels: int, is_pair: bool,
        embedding_dim: int, hidden_dim: int, num_layers: int, mlp_dim: int, dropout: float,
        pooling: str,
    ):
        super().__init__()
        self.pad_token_id = pad_token_id
        self.is_pair = is_pair
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_token_id)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(
            embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True,
            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0,
        )
        if pooling == "attention":  # only then: other students keep their parameters and checkpoints
            self.attention = nn.Linear(2 * hidden_dim, 1)
        features = 2 * hidden_dim * (4 if is_pair else 1)
        self.head = nn.Sequential(
            nn.Linear(features, mlp_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(mlp_dim, num_labels)
        )

    def forward(self, input_ids: Tensor | None, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, return_features: bool = False):
        """Map ``[B, T]`` ids (or ``[B, T, embedding_dim]`` word vectors), mask and token types to logits.

        Args:
            input_ids: ``[B, T]`` WordPiece ids; None when ``inputs_embeds`` is given.
            attention_mask: ``[B, T]``, 1 for real tokens.
            token_type_ids: ``[B, T]``; required for pair tasks.
            inputs_embeds: ``[B, T, embedding_dim]`` vectors used instead of looking up
                ``input_ids`` (data-free methods feed generated vectors here).
            return_features: also return the pooled features the head reads.

        Returns:
            ``[B, num_labels]`` logits, or ``(logits, features [B, head input width])``.
        """
        x = self.embedding(input_ids) if inputs_embeds is None else inputs_embeds
        keep = attention_mask.bool()
        if not self.is_pair:
            features = self.encode_vectors(*_compact_vectors(x, keep))
        else:
            if token_type_ids is None:
                raise ValueError("a pair-task BiLSTM student needs token_type_ids to split the pair")
            seg_a, seg_b = pair_segments(keep, token_type_ids)
            u, v = self.encode_vectors(*_compact_vectors(x, seg_a)), self.encode_vectors(*_compact_vectors(x, seg_b))
            features = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        logits = self.head(features)
        return (logits, features) if return_features else logits

    def encode(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Encode left-aligned id sequences (``[B, T]``, ``lengths [B]`` >= 1) to ``[B, 2*hidden_dim]``."""
        return self.encode_vectors(self.embedding(ids), lengths)

    def encode_vectors(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Encode left-aligned word vectors.

        Args:
            x: ``[B, T, embedding_dim]``, real tokens first.
            lengths: ``[B]`` real tokens per row, each >= 1.

        Returns:
            ``[B, 2*hidden_dim]`` pooled BiLSTM states.
        """
        x = self.dropout(x)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        valid = (torch.arange(x.shape[1], device=x.device) < lengths[:, None]).unsqueeze(-1)
        if self.pooling == "max":
            return states.masked_fill(~valid, float("-inf")).amax(dim=1)
        if self.pooling == "attention":
            scores = self.attention(states).masked_fill(~valid, float("-inf"))  # [B, T, 1]
            return (scores.softmax(dim=1) * states).sum(dim=1)
        return (states * valid).sum(dim=1) / valid.sum(dim=1)

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features (the head's input)."""
        return self.head[0].in_features


def pair_segments(keep: Tensor, token_type_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Masks ``[B, T]`` of ``a [SEP]`` (the leading ``[CLS]`` dropped) and of ``b [SEP]``."""
    seg_a = keep & (token_type_ids == 0)
    seg_a = seg_a & (seg_a.cumsum(dim=1) != 1)  # drop the first token of segment a: [CLS]
    return seg_a, keep & (token_type_ids == 1)


def _compact_vectors(x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Move the kept positions of each row of ``x [B, T, E]`` to the front, in order; trim.

    Positions past a row's end are zeros (never read: sequences are packed). An empty row keeps
    one position so that the LSTM always sees a sequence.
    """
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    lengths = keep.sum(dim=1).clamp(min=1)
    width = int(lengths.max())
    gathered = x.gather(1, order[:, :width, None].expand(-1, -1, x.shape[-1]))
    valid = torch.arange(width, device=x.device) < keep.sum(dim=1)[:, None]
    return gathered * valid[..., None].to(gathered.dtype), lengths


def split_pair(
    input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor, pad_token_id: int
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Split joint ``[CLS] a [SEP] b [SEP]`` encodings into ``a [SEP]`` and ``b [SEP]``.

    Vectorised over the batch; works for right or left padding.

    Args:
        input_ids, attention_mask, token_type_ids: ``[B, T]``.
        pad_token_id: fills positions past each segment's end.

    Returns:
        ``((ids_a, lengths_a), (ids_b, lengths_b))``: ids ``[B, T_seg]`` left-aligned, lengths ``[B]``.
    """
    seg_a, seg_b = pair_segments(attention_mask.bool(), token_type_ids)
    return _compact(input_ids, seg_a, pad_token_id), _compact(input_ids, seg_b, pad_token_id)


def _compact(input_ids: Tensor, keep: Tensor, pad_token_id: int) -> tuple[Tensor, Tensor]:
    """Move the kept tokens of each row to the front, in order; trim to the longest row.

    An empty row keeps one (pad) token so that the LSTM always sees a sequence.
    """
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    lengths = keep.sum(dim=1).clamp(min=1)
    width = int(lengths.max())
    ids = input_ids.gather(1, order)[:, :width]
    valid = torch.arange(width, device=ids.device) < keep.sum(dim=1)[:, None]
    return ids.masked_fill(~valid, pad_token_id), lengths


def teacher_embedding(teacher_path: str, dim: int, vocab_size: int, pad_token_id: int) -> Tensor:
    """The teacher's word embeddings reduced to ``dim`` columns by PCA.

    Rows are centred and projected on the top ``dim`` principal directions; when ``dim`` equals
    the teacher's width the matrix is copied exactly. The padding row is zero.

    Returns:
        ``[vocab_size, dim]`` float32.

    Raises:
        RaykdInputError: ``dim`` exceeds the teacher's width, or the teacher's vocabulary is smaller
            than ``vocab_size``.
    """
    weight = _teacher_word_embeddings(teacher_path)
    rows, width = weight.shape
    if dim > width:
        raise RaykdInputError(
            f"students.bilstm: embedding_dim {dim} exceeds the teacher's embedding width {width}; "
            f"choose embedding_dim <= {width} or embedding_init random"
        )
    if rows < vocab_size:
        raise RaykdInputError(
            f"students.bilstm: the teacher has {rows} word embeddings but the vocabulary has {vocab_size}; "
            "use the teacher's own tokenizer"
        )
    weight = weight[:vocab_size].double()
    if dim == width:
        out = weight.clone()
    else:
        centred = weight - weight.mean(dim=0)
        _, vectors = torch.linalg.eigh(centred.T @ centred)  # eigenvalues ascending
        out = centred @ vectors[:, -dim:].flip(-1)
    out[pad_token_id] = 0.0
    return out.float()


@functools.lru_cache(maxsize=1)
def _teacher_word_embeddings(teacher_path: str) -> Tensor:
    """The teacher's ``[vocab, width]`` word-embedding matrix (cached: trials reuse a worker)."""
    from transformers import AutoModel

    teacher = AutoModel.from_pretrained(teacher_path, dtype=torch.float32)
    return teacher.get_input_embeddings().weight.detach().clone()


def build(params: dict, ctx, init_from_teacher: bool = True) -> BiLSTMStudent:
    """Build a :class:`BiLSTMStudent` from resolved ``params`` and a ``StudentContext``.

    Raises:
        RaykdInputError: teacher embedding init without a teacher path, or too wide.
    """
    model = BiLSTMStudent(
        vocab_size=ctx.vocab_size, pad_token_id=ctx.pad_token_id, num_labels=ctx.num_labels,
        is_pair=ctx.is_pair, embedding_dim=params["embedding_dim"], hidden_dim=params["hidden_dim"],
        num_layers=params["num_layers"], mlp_dim=params["mlp_dim"], dropout=params["dropout"],
        pooling=params["pooling"],
    )
    if init_from_teacher and params["embedding_init"] == "teacher":
        if ctx.teacher_path is None:
            raise RaykdInputError(
                "students.bilstm: embedding_init teacher needs a teacher path; give a teacher or use embedding_init random"
            )
        table = teacher_embedding(ctx.teacher_path, params["embedding_dim"], ctx.vocab_size, ctx.pad_token_id)
        with torch.no_grad():
            model.embedding.weight.copy_(table)
    model.embedding.weight.requires_grad_(not params["freeze_embeddings"])
    return model


def check_space(domains: dict[str, Domain], teacher_config: dict | None) -> None:
    """Refuse settings no trial could build.

    Raises:
        RaykdInputError: teacher embedding init with an ``embedding_dim`` wider than the teacher's
            embeddings (checked only when ``teacher_config`` is known).
    """
    inits = domain_values(domains.get("embedding_init", Fixed(PARAMS["embedding_init"].default)))
    if "teacher" not in inits or teacher_config is None:
        return
    width = _teacher_width(teacher_config)
    widest = max(domain_values(domains.get("embedding_dim", Fixed(PARAMS["embedding_dim"].default))))
    if width is not None and widest > width:
        raise RaykdInputError(
            f"students.bilstm: embedding_dim {int(widest)} exceeds the teacher's embedding width {width}, "
            f"so PCA of its word embeddings cannot fill it; choose embedding_dim <= {width} or embedding_init random"
        )


def _teacher_width(config: dict) -> int | None:
    for key in ("embedding_size", "hidden_size", "dim", "d_model"):
        if isinstance(config.get(key), int):
            return config[key]
    return None
