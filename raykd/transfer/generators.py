"""Trained generators as a cached stage: fine-tuned once per generator setting, shared by every sampling setting.

Training the causal LM of generation distillation (:mod:`raykd.transfer.generate`) costs far more
than drawing from it, and a search over sampling settings (``multiple``, ``top_k``, ``top_p``,
temperature, prompt, dedup, ``max_samples``) would otherwise train the same generator once per
transfer set. :func:`ensure_generator` trains it once under ``<cache>/generators/<key>/``, where the
key (:func:`generator_key`) is a SHA-256 over what changes the trained weights and nothing else:

- the resolved :class:`~raykd.transfer.generate.GeneratorSettings` (the scratch size only for
  ``scratch``; the learning rate after :func:`default_lr`);
- the starting point: a pretrained path's weight, config and tokenizer files, or, for
  ``scratch``, the teacher's files (its tokenizer makes the compact vocabulary);
- the training split's content, the pre-training corpus's content (``pretrain_ood``) and the seed.

The teacher's ``max_length`` is not part of the key: the generator reads ``max_tokens`` tokens,
and ``max_length`` only decides how the teacher encodes the samples (the transfer set's own key
covers it). Training runs under a file lock per key, into a temporary folder renamed into place, so
concurrent transfer-set builds wait for one training and then load it. Each training appends one
line to ``<cache>/generators/builds.log`` (what the shared-generator test counts).

This module imports neither torch nor transformers at import time: the search space reads
:func:`default_lr` and :func:`sample_count` before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raykd.transfer.generator_kinds import PRETRAINED_LR, SCRATCH, SCRATCH_LR, default_lr

if TYPE_CHECKING:
    from raykd.transfer.generate import Generator, GeneratorSettings
    from raykd.transfer.store import TransferSource

__all__ = ["SCRATCH", "SCRATCH_LR", "PRETRAINED_LR", "GENERATOR_BUILDS_LOG", "CachedGenerator", "default_lr",
           "sample_count", "generator_key", "ensure_generator"]

GENERATOR_BUILDS_LOG = "builds.log"
CACHE_VERSION = 1
_SCRATCH_SIZE = ("layers", "dim", "heads")


def sample_count(multiple: float, max_samples: int, train_rows: int) -> int:
    """Samples asked of the generator: ``round(multiple * train_rows)``, at least 1, capped at ``max_samples``.

    A ``max_samples`` of 0 means no cap.
    """
    n = max(1, round(multiple * train_rows))
    return min(n, max_samples) if max_samples > 0 else n


@dataclass(frozen=True)
class CachedGenerator:
    """A trained generator from the cache.

    Attributes:
        generator: the model, codec and training examples, ready to sample.
        key: its cache key.
        folder: its cache folder.
        built: True if this call trained it, False if it was loaded.
    """

    generator: Generator
    key: str
    folder: Path
    built: bool


def generator_key(settings: GeneratorSettings, source: TransferSource, *, pretrain: bool) -> str:
    """The cache key of a trained generator (24 hex digits); see the module docstring for what it covers."""
    from raykd.teachers.cache import teacher_fingerprint

    scratch = settings.path == SCRATCH
    fields = {k: v for k, v in asdict(settings).items() if scratch or k not in _SCRATCH_SIZE}
    payload = {"v": CACHE_VERSION, "settings": fields, "data": source.data_fingerprint, "seed": source.seed,
               "start": source.teacher_fingerprint if scratch else teacher_fingerprint(settings.path),
               "pretrain": _file_digest(source.ood_text) if pretrain and source.ood_text else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def ensure_generator(settings: GeneratorSettings, source: TransferSource, *, pretrain: bool, device: str = "cpu",
                     progress: bool = True) -> CachedGenerator:
    """Return the generator trained with ``settings`` on the source's training split, training it only if missing.

    Args:
        settings: generator source, size and training (learning rate already resolved).
        source: the training split, teacher (scratch vocabulary), cache and seed.
        pretrain: train on the source's out-of-domain corpus first (ignored when it has none).
        device: where the generator trains and samples.
        progress: show training progress bars.

    Raises:
        RaykdInputError: see :meth:`raykd.transfer.generate.Generator.train`.
    """
    from filelock import FileLock

    from raykd.teachers.load import load_tokenizer
    from raykd.transfer.generate import Generator

    key = generator_key(settings, source, pretrain=pretrain)
    root = Path(source.cache_dir) / "generators"
    folder = root / key
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(source.teacher_path) if settings.path == SCRATCH else None
    with FileLock(str(root / f"{key}.lock")):  # concurrent set builds wait for one training, then load it
        if (folder / Generator.STATE_FILE).is_file():
            return CachedGenerator(Generator.load(folder, tokenizer=tokenizer, device=device), key, folder, False)
        generator = _train(settings, source, pretrain, tokenizer, device, progress)
        _publish(generator, folder)
        with open(root / GENERATOR_BUILDS_LOG, "a") as log:
            log.write(f"{key} path={settings.path} pid={os.getpid()} "
                      f"seconds={generator.train_stats['train_seconds']:.2f}\n")
    return CachedGenerator(generator, key, folder, True)


def _train(settings: GeneratorSettings, source: TransferSource, pretrain: bool, tokenizer, device: str,
           progress: bool) -> Generator:
    """Train on the source's training text (and first its out-of-domain corpus when ``pretrain``)."""
    import pandas as pd

    from raykd.transfer.generate import Generator, text_column

    train = source.read_train()
    texts_b = text_column(train, "text_b") if "text_b" in train.columns else None
    pretrain_texts = None
    if pretrain and source.ood_text:
        pretrain_texts = pd.read_json(source.ood_text, lines=True)["text_a"].astype(str).tolist()
    return Generator.train(text_column(train, "text_a"), texts_b, settings, tokenizer=tokenizer, seed=source.seed,
                           device=device, pretrain_texts=pretrain_texts, progress=progress)


def _publish(generator: Generator, folder: Path) -> None:
    """Write the generator to a temporary folder next to ``folder``, then rename it into place."""
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        generator.save(tmp)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()

