"""Student models: shapes, padding invariance, pair split, counting, teacher init, save/load."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import pad_batch, token_batch

from raykd.domains import Choice, Fixed, Range
from raykd.errors import RaykdInputError
from raykd.students import (
    ParamCount,
    StudentContext,
    bilstm,
    build_student,
    count_parameters,
    load_student,
    save_student,
    student_spec,
    transformer,
)

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
TEACHER = MODELS / "minilm-sst2"
needs_teacher = pytest.mark.skipif(not TEACHER.is_dir(), reason="real teacher weights not present")

VOCAB, PAD = 50, 0
TINY = {
    "bilstm": {"embedding_dim": 8, "hidden_dim": 8, "mlp_dim": 8, "embedding_init": "random"},
    "transformer": {"num_layers": 1, "hidden_size": 16, "num_heads": 2, "ffn_dim": 32},
}


def _ctx(is_pair=False, num_labels=2, **kw):
    return StudentContext(num_labels=num_labels, is_pair=is_pair, vocab_size=VOCAB, pad_token_id=PAD, max_length=16, **kw)


@pytest.fixture(scope="module")
def teacher():
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(TEACHER).eval()


@pytest.fixture(scope="module")
def teacher_ctx():
    return StudentContext(
        num_labels=2, is_pair=False, vocab_size=30522, pad_token_id=0, max_length=128, teacher_path=str(TEACHER)
    )


# shapes, padding, pairs


@pytest.mark.parametrize("family", ["bilstm", "transformer"])
@pytest.mark.parametrize("is_pair", [False, True])
@pytest.mark.parametrize("num_labels", [1, 3])
def test_output_shape(family, is_pair, num_labels):
    model = build_student(family, TINY[family], _ctx(is_pair, num_labels))
    logits = model(*token_batch([9, 5, 4], is_pair))
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, num_labels)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("is_pair", [False, True])
@pytest.mark.parametrize("pooling", ["max", "mean"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_bilstm_padding_invariance(is_pair, pooling, num_layers):
    params = dict(TINY["bilstm"], pooling=pooling, num_layers=num_layers)
    model = build_student("bilstm", params, _ctx(is_pair)).eval()
    batch = token_batch([9, 5, 4], is_pair)
    with torch.no_grad():
        torch.testing.assert_close(model(*batch), model(*pad_batch(batch, 7)), rtol=0, atol=1e-6)
        # a row alone gives the logits it gets in the padded batch
        alone = tuple(t[1:2, :5] for t in batch)
        torch.testing.assert_close(model(*alone), model(*batch)[1:2], rtol=0, atol=1e-6)


def test_split_pair_by_hand():
    # [CLS]=101 a=(7, 8) [SEP]=102 b=(9,) [SEP] pad | [CLS] a=(5,) [SEP] b=(6, 4, 3) [SEP]
    ids = torch.tensor([[101, 7, 8, 102, 9, 102, 0, 0], [101, 5, 102, 6, 4, 3, 102, 0]])
    mask = (ids != 0).long()
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1, 0]])
    (ids_a, len_a), (ids_b, len_b) = bilstm.split_pair(ids, mask, types, pad_token_id=0)
    assert ids_a.tolist() == [[7, 8, 102], [5, 102, 0]] and len_a.tolist() == [3, 2]
    assert ids_b.tolist() == [[9, 102, 0, 0], [6, 4, 3, 102]] and len_b.tolist() == [2, 4]


def test_bilstm_pair_combines_u_v():
    model = build_student("bilstm", TINY["bilstm"], _ctx(is_pair=True)).eval()
    ids = torch.tensor([[1, 7, 8, 2, 9, 2]])
    mask, types = torch.ones_like(ids), torch.tensor([[0, 0, 0, 0, 1, 1]])
    with torch.no_grad():
        u = model.encode(torch.tensor([[7, 8, 2]]), torch.tensor([3]))
        v = model.encode(torch.tensor([[9, 2]]), torch.tensor([2]))
        expected = model.head(torch.cat([u, v, (u - v).abs(), u * v], dim=-1))
        torch.testing.assert_close(model(ids, mask, types), expected)


# parameter counting


@pytest.mark.parametrize("family", ["bilstm", "transformer"])
def test_count_matches_numel(family):
    model = build_student(family, dict(TINY[family], freeze_embeddings=True), _ctx())
    count = count_parameters(model)
    embeddings = sum(
        p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    )
    assert count.total == sum(p.numel() for p in model.parameters())  # frozen ones included
    assert count.non_embedding == count.total - embeddings
    assert count.embedding == embeddings


@pytest.mark.parametrize("is_pair", [False, True])
def test_bilstm_count_by_formula(is_pair):
    e, h, m, c = 8, 8, 8, 2
    model = build_student("bilstm", TINY["bilstm"], _ctx(is_pair))
    lstm = 2 * (4 * h * (e + h) + 8 * h)  # two directions, W_ih, W_hh and two biases each
    head = (2 * h * (4 if is_pair else 1) + 1) * m + (m + 1) * c
    assert count_parameters(model) == ParamCount(total=VOCAB * e + lstm + head, non_embedding=lstm + head)


def test_transformer_count_by_formula():
    h, f, t, c = 16, 32, 16, 2
    model = build_student("transformer", TINY["transformer"], _ctx())
    layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h
    non_embedding = 2 * h + layer + (h * h + h) + (h + 1) * c  # embedding LayerNorm, layer, pooler, head
    assert count_parameters(model) == ParamCount(total=(VOCAB + t + 2) * h + non_embedding, non_embedding=non_embedding)


# teacher initialisation


def test_teacher_layers():
    assert transformer.teacher_layers("teacher_skip", 3, 6) == [1, 3, 5]
    assert transformer.teacher_layers("teacher_skip", 6, 12) == [1, 3, 5, 7, 9, 11]  # PKD: {2, 4, ..., 12}
    assert transformer.teacher_layers("teacher_skip", 1, 6) == [5]
    assert transformer.teacher_layers("teacher_first", 2, 6) == [0, 1]
    assert transformer.teacher_layers("teacher_last", 2, 6) == [4, 5]
    with pytest.raises(ValueError):
        transformer.teacher_layers("teacher_last", 7, 6)


@needs_teacher
def test_teacher_skip_copies_exact_tensors(teacher, teacher_ctx):
    student = build_student("transformer", {"init": "teacher_skip", "num_layers": 3}, teacher_ctx)
    s, t = student.state_dict(), teacher.state_dict()
    assert student.config.hidden_size == 384 and student.config.num_attention_heads == 12
    for i, j in enumerate([1, 3, 5]):
        prefix_s, prefix_t = f"bert.encoder.layer.{i}.", f"bert.encoder.layer.{j}."
        keys = [k for k in t if k.startswith(prefix_t)]
        assert len(keys) == 16
        for key in keys:
            assert torch.equal(s[prefix_s + key[len(prefix_t):]], t[key]), key
    assert torch.equal(s["bert.embeddings.position_embeddings.weight"], t["bert.embeddings.position_embeddings.weight"][:128])
    for key in [k for k in s if k.startswith(("bert.embeddings.word", "bert.embeddings.token", "bert.embeddings.Layer", "bert.pooler", "classifier"))]:
        assert torch.equal(s[key], t[key]), key


@needs_teacher
def test_full_teacher_copy_reproduces_teacher_logits(teacher, teacher_ctx):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TEACHER)
    sentences = ["a gripping, beautifully acted film.", "dull and far too long.", "it's fine, i guess, if you like that sort of thing."]
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    student = build_student("transformer", {"init": "teacher_first", "num_layers": 6}, teacher_ctx).eval()
    with torch.no_grad():
        expected = teacher(**enc).logits
        got = student(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert got.argmax(-1).tolist() == [1, 0, expected.argmax(-1)[2].item()]


@needs_teacher
def test_teacher_init_skips_classifier_of_other_shape(teacher, teacher_ctx):
    ctx = StudentContext(**{**teacher_ctx.__dict__, "num_labels": 3})
    student = build_student("transformer", {"init": "teacher_last", "num_layers": 1}, ctx)
    assert student.classifier.weight.shape == (3, 384)
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[5].output.dense.weight)


@needs_teacher
def test_pca_embedding_init(teacher, teacher_ctx):
    weight = teacher.bert.embeddings.word_embeddings.weight.detach()
    model = build_student("bilstm", {"embedding_dim": 32}, teacher_ctx)
    table = model.embedding.weight.detach()
    assert table.shape == (30522, 32)
    assert torch.all(table[0] == 0)
    variance = table[1:].var(dim=0)
    assert torch.all(variance[:-1] >= variance[1:] - 1e-6)  # principal components, largest first
    centred = weight - weight.mean(0)
    assert variance.sum() / centred.var(dim=0).sum() > 0.2  # 32 of 384 directions keep a fair share
    exact = bilstm.teacher_embedding(str(TEACHER), 384, 30522, 0)
    assert torch.equal(exact[1:], weight[1:]) and torch.all(exact[0] == 0)


def test_bilstm_teacher_init_needs_teacher():
    with pytest.raises(RaykdInputError, match="embedding_init random"):
        build_student("bilstm", {"embedding_init": "teacher"}, _ctx())


def test_freeze_flags():
    lstm = build_student("bilstm", dict(TINY["bilstm"], freeze_embeddings=True), _ctx())
    assert not lstm.embedding.weight.requires_grad and lstm.lstm.weight_ih_l0.requires_grad
    bert = build_student("transformer", dict(TINY["transformer"], freeze_embeddings=True), _ctx())
    emb = bert.bert.embeddings
    assert not emb.word_embeddings.weight.requires_grad
    assert emb.position_embeddings.weight.requires_grad and bert.classifier.weight.requires_grad
    unfrozen = build_student("transformer", TINY["transformer"], _ctx())
    assert all(p.requires_grad for p in unfrozen.parameters())


# save / load


@pytest.mark.parametrize("family", ["bilstm", "transformer"])
def test_save_load_round_trip(family, tmp_path):
    ctx = _ctx(is_pair=True)
    params = dict(TINY[family], freeze_embeddings=True)
    model = build_student(family, params, ctx).eval()
    spec = student_spec(family, params, ctx)
    save_student(model, spec, tmp_path / "student")
    loaded = load_student(tmp_path / "student")
    batch = token_batch([9, 5, 4], is_pair=True)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(*batch), model(*batch))
    embedding = loaded.embedding if family == "bilstm" else loaded.bert.embeddings.word_embeddings
    assert not embedding.weight.requires_grad  # freeze flags survive the round trip
    assert json.loads((tmp_path / "student" / "student.json").read_text()) == spec


@needs_teacher
def test_load_teacher_initialised_student_without_teacher(teacher_ctx, tmp_path):
    model = build_student("transformer", {"init": "teacher_skip", "num_layers": 1}, teacher_ctx).eval()
    spec = student_spec("transformer", {"init": "teacher_skip", "num_layers": 1}, teacher_ctx)
    assert spec["context"]["teacher_config"]["hidden_size"] == 384
    spec["context"]["teacher_path"] = str(tmp_path / "gone")  # the teacher is not needed to load
    save_student(model, spec, tmp_path)
    loaded = load_student(tmp_path)
    ids = torch.tensor([[101, 2023, 2003, 2204, 102]])
    with torch.no_grad():
        assert torch.equal(loaded(ids, torch.ones_like(ids), torch.zeros_like(ids)), model(ids, torch.ones_like(ids), torch.zeros_like(ids)))


def test_load_student_missing_folder(tmp_path):
    with pytest.raises(RaykdInputError, match="save_student"):
        load_student(tmp_path)


# settings and search-space checks


def test_spec_is_json_and_fills_defaults():
    spec = student_spec("bilstm", {"hidden_dim": 64}, _ctx())
    assert json.loads(json.dumps(spec)) == spec
    assert spec["family"] == "bilstm" and spec["params"]["hidden_dim"] == 64 and spec["params"]["pooling"] == "max"
    assert spec["context"]["vocab_size"] == VOCAB


@pytest.mark.parametrize(
    "family, params, match",
    [
        ("bilstm", {"hidden_dimm": 8}, "did you mean 'hidden_dim'"),
        ("bilstm", {"num_layers": 3}, "num_layers must be <= 2"),
        ("bilstm", {"pooling": "last"}, "not one of max, mean"),
        ("lstm", {}, "unknown student 'lstm'"),
        ("transformer", {"hidden_size": 100, "num_heads": 12}, "not divisible by num_heads 12"),
        ("transformer", {"init": "teacher_first"}, "no teacher is known"),
    ],
)
def test_build_rejects_bad_settings(family, params, match):
    with pytest.raises(RaykdInputError, match=match):
        build_student(family, params, _ctx())


BERT_CONFIG = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12}


@pytest.mark.parametrize(
    "domains, config, match",
    [
        ({"hidden_size": Choice((256, 250)), "num_heads": Choice((4,))}, None, "hidden_size 250 is not divisible by num_heads 4"),
        ({"hidden_size": Fixed(256), "num_heads": Range(2, 4, is_int=True)}, None, "num_heads 3"),
        ({"init": Choice(("random", "teacher_skip")), "num_layers": Range(1, 8, is_int=True)}, BERT_CONFIG, "num_layers 8 exceeds the teacher's 6"),
        ({"init": Fixed("teacher_last")}, None, "give a teacher or use init random"),
        ({"init": Fixed("teacher_last")}, {**BERT_CONFIG, "model_type": "roberta"}, "needs a BERT teacher"),
    ],
)
def test_transformer_check_space_errors(domains, config, match):
    with pytest.raises(RaykdInputError, match=match):
        transformer.check_space(domains, config)


def test_check_space_accepts_good_spaces():
    transformer.check_space({"hidden_size": Choice((128, 256)), "num_heads": Choice((2, 4))}, None)
    transformer.check_space({"hidden_size": Range(64, 256, step=64, is_int=True), "num_heads": Fixed(4)}, None)
    # width settings are ignored when every init copies the teacher
    transformer.check_space({"init": Fixed("teacher_skip"), "hidden_size": Fixed(100), "num_layers": Fixed(6)}, BERT_CONFIG)
    bilstm.check_space({"embedding_init": Fixed("teacher"), "embedding_dim": Fixed(384)}, BERT_CONFIG)
    bilstm.check_space({"embedding_init": Fixed("random"), "embedding_dim": Fixed(512)}, BERT_CONFIG)


def test_bilstm_check_space_width():
    with pytest.raises(RaykdInputError, match="embedding_dim 512 exceeds the teacher's embedding width 384"):
        bilstm.check_space({"embedding_init": Choice(("teacher", "random")), "embedding_dim": Range(64, 512, is_int=True)}, BERT_CONFIG)


def test_import_stays_free_of_ray_and_mlflow():
    code = "import sys, raykd.students, raykd.losses; print(any(m.split('.')[0] in ('ray', 'mlflow') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
