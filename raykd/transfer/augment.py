"""Tang et al. transfer-set augmentation: masked, POS-swapped and n-gram-cut copies of the training text.

Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks"
(arXiv 1903.12136), grow the distillation transfer set with rules, as in their code
(castorini/d-bert, ``dbert/distill/run/augment_data.py`` and ``augment_paired_data.py``):

1. the words of an example are its whitespace tokens (GLUE text is already tokenised);
2. per word, one uniform draw ``u``: ``u < p_mask`` replaces it by the mask token,
   ``u < p_mask + p_pos`` by a random training word with the same part-of-speech tag, else it stays;
3. with probability ``p_ng`` the result is cut to a random window of ``n`` consecutive words,
   ``n`` uniform in 1..5 (only when the example has more than ``n`` words);
4. every example is processed ``n_iter`` times (20 for single sentences, 10 for pairs) and only
   novel strings are kept: anything equal to an original or to an earlier output is dropped;
5. pairs: with probability 2/3 only one side (chosen 50/50) is augmented, else both; novelty is
   judged on the ``(a, b)`` pair.

Where raykd departs from the paper and its code:

- POS tags come from textblob's ``PatternTagger`` (Penn Treebank tags, lexicon inside the wheel)
  instead of NLTK's ``pos_tag``, whose model needs a data download.
- The POS dictionary holds each distinct word once per tag (sorted, so a seed fixes the result),
  so replacements are drawn uniformly over distinct words, not by frequency.
- The mask token is the teacher tokenizer's (``[MASK]`` by default). raykd students share the
  teacher's vocabulary, so they see the teacher's mask WordPiece id rather than an unknown-word token.
- The rates ``p_mask=0.1``, ``p_pos=0.1``, ``p_ng=0.25`` are from memory in the project notes
  (METHODS.md section 1), not read from the paper's method section.
- Whitespace is normalised (tokens joined by one space) before the novelty check, so an original
  with a trailing space does not come back as a "new" example.
- Novelty is judged on a 64-bit hash of each example (see below), not on the strings: two different
  examples with the same hash (odds about 1e-6 for a few million outputs) lose the later one.

Chunks and memory. :func:`tang_chunks` yields the output as frames, one per ``chunk_rows`` source
examples (:func:`tang_augment` joins them), so a transfer set of millions of rows never needs to
be held whole (:mod:`raykd.transfer.store` tokenises, labels and writes it a shard at a time). Two
things span the whole source, and are built in one tagging pass before the first chunk: the POS
lexicon (distinct words per tag) with each distinct source text's tags, one byte per word; and the
novelty check, a sorted array of 8-byte hashes of the originals and of every example kept so far.
Random draws are made per example in source order, so for a seed the output (the joined chunks) is
the same for every chunk size. Memory is the source frame, the tag index (about 100-250 bytes per
distinct source text, lexicon included), 8 bytes per source and output row, and one chunk's
texts and outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raykd.errors import RaykdInputError

__all__ = ["TangSettings", "pos_lexicon", "tang_augment", "tang_chunks", "TANG_CHUNK_ROWS"]

_SINGLE_ITERATIONS = 20
_PAIR_ITERATIONS = 10
_MAX_NGRAM = 5
_BOTH_SIDES = 1 / 3
_PROGRESS_EVERY = 256

TANG_CHUNK_ROWS = 4096
"""Default source examples per chunk of :func:`tang_chunks` (up to 10-20 outputs each)."""

_Tagged = tuple[tuple[str, ...], tuple["str | None", ...]]
"""A sentence's words and their POS tags (None: no reliable tag, never swapped)."""


@dataclass(frozen=True)
class TangSettings:
    """Rates of Tang et al.'s augmentation rules.

    Attributes:
        p_mask: per-word probability of the mask token.
        p_pos: per-word probability of a same-POS replacement (given no mask).
        p_ng: per-example probability of the cut to a 1-5 word window.
        n_iter: augmentation passes per example; None: 20 for single sentences, 10 for pairs.
    """

    p_mask: float = 0.1
    p_pos: float = 0.1
    p_ng: float = 0.25
    n_iter: int | None = None

    def __post_init__(self):
        for name in ("p_mask", "p_pos", "p_ng"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # also rejects NaN
                raise RaykdInputError(f"tang augmentation: {name} must be in [0, 1], got {value}")
        if self.p_mask + self.p_pos > 1.0:
            raise RaykdInputError(
                f"tang augmentation: p_mask + p_pos must be <= 1, got {self.p_mask} + {self.p_pos}")
        if self.n_iter is not None and self.n_iter < 1:
            raise RaykdInputError(f"tang augmentation: n_iter must be >= 1, got {self.n_iter}")

    def iterations(self, is_pair: bool) -> int:
        """Passes per example: ``n_iter``, or the paper's 10 for pairs and 20 for single sentences."""
        if self.n_iter is not None:
            return self.n_iter
        return _PAIR_ITERATIONS if is_pair else _SINGLE_ITERATIONS


def _new_tagger():
    # Imported here so that importing this module does not load textblob's lexicon.
    from textblob.en.taggers import PatternTagger

    return PatternTagger()


def _tag_words(tagger, words: Sequence[str]) -> tuple[str | None, ...]:
    """POS tags aligned 1:1 with ``words``.

    Pattern with ``tokenize=False`` splits on single spaces only, so the joined words normally come
    back one tag each. If the count ever differs, each word is tagged alone, and a word that still
    does not give exactly one tag gets None (it is then kept, never swapped).
    """
    if not words:
        return ()  # Pattern tags the empty string as one NN token
    tagged = tagger.tag(" ".join(words), tokenize=False)
    if len(tagged) == len(words):
        return tuple(tag for _, tag in tagged)
    alone = [tagger.tag(word, tokenize=False) for word in words]
    return tuple(result[0][1] if len(result) == 1 else None for result in alone)


class _TagIndex:
    """Every distinct text's POS tags and the lexicon they make, from one tagging pass.

    Tags are kept as one byte per word (a code into :attr:`names`; 0 is None) rather than as the
    tagged tuples, so the index of a few hundred thousand source texts stays a fraction of their
    size. Pattern's tag set is Penn Treebank's (under 50 tags), far from the 255 codes a byte holds.

    Attributes:
        lexicon: tag -> sorted distinct words with that tag.
        names: code -> tag.
    """

    def __init__(self, texts: Iterable[str], tagger=None):
        tagger = tagger or _new_tagger()
        self.names: list[str | None] = [None]
        self._codes: dict[str, bytes] = {}
        numbers: dict[str | None, int] = {None: 0}
        by_tag: dict[str, set[str]] = {}
        for text in texts:
            if text in self._codes:
                continue
            words = text.split()
            tags = _tag_words(tagger, words)
            for tag in tags:
                if tag not in numbers:
                    numbers[tag] = len(self.names)
                    self.names.append(tag)
            self._codes[text] = bytes(numbers[tag] for tag in tags)
            for word, tag in zip(words, tags):
                if tag is not None:
                    by_tag.setdefault(tag, set()).add(word)
        self.lexicon = {tag: sorted(words) for tag, words in sorted(by_tag.items())}

    def tagged(self, text: str) -> _Tagged:
        """The words of an indexed text and their tags."""
        return tuple(text.split()), tuple(self.names[code] for code in self._codes[text])


def pos_lexicon(texts: Iterable[str]) -> dict[str, list[str]]:
    """tag -> distinct words with that tag in ``texts`` (sorted).

    Args:
        texts: whitespace-tokenised sentences.

    Returns:
        Penn Treebank tag (from textblob's ``PatternTagger``) -> sorted distinct words.
    """
    return _TagIndex(texts).lexicon


@dataclass(frozen=True)
class _Sentence:
    """One source sentence ready for augmentation.

    Attributes:
        words: its whitespace tokens (object array, so rows can take other strings).
        choices: per word, the lexicon list of its tag (empty when untagged).
        sizes: per word, ``len(choices[j])``.
        text: the words joined by single spaces (its normalised form).
    """

    words: np.ndarray
    choices: tuple[list[str], ...]
    sizes: np.ndarray
    text: str


def _prepare(tagged: _Tagged, lexicon: dict[str, list[str]]) -> _Sentence:
    words, tags = tagged
    choices = tuple(lexicon.get(tag, []) if tag is not None else [] for tag in tags)
    array = np.empty(len(words), dtype=object)
    array[:] = words  # np.array(words) would make a fixed-width string array
    return _Sentence(array, choices, np.array([len(c) for c in choices], dtype=np.int64), " ".join(words))


def _replace_words(rng: np.random.Generator, sentence: _Sentence, n: int,
                   settings: TangSettings, mask_token: str) -> np.ndarray:
    """``n`` rows of the sentence's words after the per-word mask / POS-swap draw."""
    grid = np.tile(sentence.words, (n, 1))
    draws = rng.random(grid.shape)
    picks = (rng.random(grid.shape) * sentence.sizes).astype(np.int64)
    # Guards the float product rounding up to the list size.
    picks = np.minimum(picks, np.maximum(sentence.sizes - 1, 0))
    grid[draws < settings.p_mask] = mask_token
    swap = (draws >= settings.p_mask) & (draws < settings.p_mask + settings.p_pos) & (sentence.sizes > 0)
    for row, col in zip(*np.nonzero(swap)):
        grid[row, col] = sentence.choices[col][picks[row, col]]
    return grid


def _augment_sentence(rng: np.random.Generator, sentence: _Sentence, n: int,
                      settings: TangSettings, mask_token: str) -> list[str]:
    """``n`` augmented versions of one sentence (rules 2 and 3), duplicates included."""
    grid = _replace_words(rng, sentence, n, settings, mask_token)
    cut = rng.random(n) < settings.p_ng
    lengths = rng.integers(1, _MAX_NGRAM + 1, size=n)
    starts = rng.random(n)
    length = len(sentence.words)
    out = []
    for row, do_cut, size, start in zip(grid, cut, lengths, starts):
        if do_cut and length > size:
            first = min(int(start * (length - size + 1)), length - size)
            row = row[first:first + size]
        out.append(" ".join(row))
    return out


def _augment_pair(rng: np.random.Generator, a: _Sentence, b: _Sentence, n: int,
                  settings: TangSettings, mask_token: str) -> list[tuple[str, str]]:
    """``n`` augmented versions of one pair: one side (50/50) with probability 2/3, else both."""
    both = rng.random(n) < _BOTH_SIDES
    side_a = rng.random(n) < 0.5
    new_a = _augment_sentence(rng, a, n, settings, mask_token)
    new_b = _augment_sentence(rng, b, n, settings, mask_token)
    return [(new_a[i] if both[i] or side_a[i] else a.text,
             new_b[i] if both[i] or not side_a[i] else b.text) for i in range(n)]


def _column(frame: pd.DataFrame, name: str) -> list[str]:
    # Empty TSV cells arrive as NaN; they are empty sentences here.
    return ["" if not isinstance(value, str) else value for value in frame[name].tolist()]


def _sources(columns: list[list[str]], index: _TagIndex) -> list[tuple[_Sentence, ...]]:
    """Per example of a chunk (its text columns), its prepared sentence(s); each distinct text once."""
    prepared: dict[str, _Sentence] = {}
    for text in (text for column in columns for text in column):
        if text not in prepared:
            prepared[text] = _prepare(index.tagged(text), index.lexicon)
    return [tuple(prepared[text] for text in texts) for texts in zip(*columns)]


def _hashes(examples: list[tuple[str, ...]], width: int) -> np.ndarray:
    """uint64 ``[len(examples)]``: pandas' fixed-key SipHash of each example (the same in every process)."""
    return pd.util.hash_pandas_object(pd.DataFrame(examples, columns=range(width)), index=False).to_numpy()


class _Seen:
    """The novelty check: sorted 64-bit hashes of every example seen so far (8 bytes each)."""

    def __init__(self):
        self._sorted = np.empty(0, dtype=np.uint64)

    def novel(self, hashes: np.ndarray) -> np.ndarray:
        """bool ``[len(hashes)]``: neither seen before nor earlier in ``hashes``; these are then seen."""
        first = np.zeros(len(hashes), dtype=bool)
        first[np.unique(hashes, return_index=True)[1]] = True
        if len(self._sorted):
            at = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
            first &= self._sorted[at] != hashes
        new = np.sort(hashes[first])
        self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, new), new)
        return first


def _candidates(rng: np.random.Generator, source: tuple[_Sentence, ...], n: int,
                settings: TangSettings, mask_token: str) -> list[tuple[str, ...]]:
    """``n`` augmented versions of one example, as tuples comparable with the originals."""
    if len(source) == 2:
        return _augment_pair(rng, *source, n, settings, mask_token)
    return [(text,) for text in _augment_sentence(rng, source[0], n, settings, mask_token)]


def tang_augment(frame: pd.DataFrame, settings: TangSettings, *, seed: int, mask_token: str = "[MASK]",
                 progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Tang et al.'s augmented transfer set for the examples of ``frame`` (see the module docstring).

    The chunks of :func:`tang_chunks` joined; use that to hold one chunk at a time.

    Args:
        frame: column ``text_a`` and, for a pair task, ``text_b``; other columns are ignored.
        settings: the rates and passes.
        seed: seeds ``numpy.random.default_rng``; the same seed gives the same output, in order.
        mask_token: the teacher tokenizer's mask token.
        progress: called with the number of source examples processed since its previous call
            (the calls sum to ``len(frame)``), e.g. ``tqdm.update``.

    Returns:
        A new frame with ``text_a`` (and ``text_b``) only: the novel augmented examples, in source
        order and pass order. Whitespace in the outputs is normalised to single spaces.

    Raises:
        RaykdInputError: ``frame`` has no ``text_a`` column.
    """
    chunks = list(tang_chunks(frame, settings, seed=seed, mask_token=mask_token, progress=progress))
    if not chunks:
        return pd.DataFrame([], columns=_output_columns(frame))
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def tang_chunks(frame: pd.DataFrame, settings: TangSettings, *, seed: int, mask_token: str = "[MASK]",
                chunk_rows: int = TANG_CHUNK_ROWS,
                progress: Callable[[int], None] | None = None) -> Iterator[pd.DataFrame]:
    """:func:`tang_augment`'s output a chunk of source examples at a time.

    The source is tagged once before the first chunk (the lexicon spans all of it); then each
    chunk of ``chunk_rows`` source examples is augmented and its novel outputs yielded. Joined,
    the chunks are :func:`tang_augment`'s frame for every ``chunk_rows``.

    Args:
        frame, settings, seed, mask_token, progress: as for :func:`tang_augment`.
        chunk_rows: source examples per chunk (a chunk yields up to ``n_iter`` times as many rows).

    Yields:
        Frames of ``text_a`` (and ``text_b``) with fresh indexes from 0; chunks with no novel
        output are skipped.

    Raises:
        RaykdInputError: ``frame`` has no ``text_a`` column, or ``chunk_rows`` < 1 (raised at the
            call, not at the first chunk).
    """
    if "text_a" not in frame.columns:
        raise RaykdInputError(f"tang augmentation needs a text_a column, got {list(frame.columns)}")
    if chunk_rows < 1:
        raise RaykdInputError(f"tang augmentation: chunk_rows must be >= 1, got {chunk_rows}")
    return _chunks(frame, settings, seed, mask_token, chunk_rows, progress)


def _output_columns(frame: pd.DataFrame) -> list[str]:
    return ["text_a", "text_b"] if "text_b" in frame.columns else ["text_a"]


def _text_chunks(frame: pd.DataFrame, names: list[str], chunk_rows: int) -> Iterator[list[list[str]]]:
    """The ``names`` columns ``chunk_rows`` rows at a time, as lists of str.

    Only one chunk's texts are Python strings at a time; pandas holds them far more compactly.
    """
    for start in range(0, len(frame), chunk_rows):
        part = frame.iloc[start:start + chunk_rows]
        yield [_column(part, name) for name in names]


def _chunks(frame: pd.DataFrame, settings: TangSettings, seed: int, mask_token: str, chunk_rows: int,
            progress: Callable[[int], None] | None) -> Iterator[pd.DataFrame]:
    """Three passes over the source: tag it, mark the originals seen, then augment chunk by chunk."""
    names = _output_columns(frame)
    index = _TagIndex(text for columns in _text_chunks(frame, names, chunk_rows) for column in columns
                      for text in column)
    seen = _Seen()
    for columns in _text_chunks(frame, names, chunk_rows):  # the originals are never "novel"
        seen.novel(_hashes([tuple(" ".join(text.split()) for text in texts) for texts in zip(*columns)], len(names)))
    rng = np.random.default_rng(seed)
    n = settings.iterations(len(names) == 2)
    for columns in _text_chunks(frame, names, chunk_rows):
        sources = _sources(columns, index)
        candidates: list[tuple[str, ...]] = []
        reported = 0
        for done, source in enumerate(sources, start=1):
            candidates.extend(_candidates(rng, source, n, settings, mask_token))
            if progress is not None and (done % _PROGRESS_EVERY == 0 or done == len(sources)):
                progress(done - reported)
                reported = done
        keep = seen.novel(_hashes(candidates, len(names)))
        if keep.any():
            yield pd.DataFrame([c for c, kept in zip(candidates, keep) if kept], columns=names)
