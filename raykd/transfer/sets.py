"""Which transfer sets a trial asks for, and the builders that make them.

A method that trains on task data names extra transfer sets with ``transfer_requests(params)``:
a list of ``(kind, settings)`` pairs, ``tang`` (Tang et al. augmentation of the training split) and
``generation`` (samples of a causal LM trained on it). :func:`build_transfer_sets` returns each from
the cache (:mod:`raykd.transfer.store`), building it first if no trial or sweep has. On a cluster
the build is a Ray task of its own with ``stages.transfer_sets``'s resources (a GPU for the
generator and the teacher), and the trials that need the set wait for it; the cache's file lock
makes concurrent requests for one key wait for one build. A task records where it ran in the
set's ``built_on.json`` (Ray node id, device).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from raykd.domains import ParamSpec
from raykd.transfer.store import TransferSet, TransferSource, ensure_transfer_set

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TANG_PARAMS", "TANG_RATES", "tang_request", "build_transfer_sets", "build_one", "cached_set"]

TANG_PARAMS = {
    "augment": ParamSpec(str, "none", "transfer-set augmentation of the training split: none or tang (Tang et al. "
                         "2019: masking, same-POS replacement, n-gram sampling)", choices=("none", "tang")),
    "p_mask": ParamSpec(float, 0.1, "tang: probability of masking a word", low=0, high=1),
    "p_pos": ParamSpec(float, 0.1, "tang: probability of replacing a word by one with its part-of-speech tag",
                       low=0, high=1),
    "p_ng": ParamSpec(float, 0.25, "tang: probability of cutting an example to a random 1-5-word n-gram", low=0, high=1),
    "n_iter": ParamSpec(int, 0, "tang: augmented copies tried per example (0: 20 for sentences, 10 for pairs)", low=0),
}
"""Settings of ``augment: tang``, shared by every method that offers it."""

TANG_RATES = ("p_mask", "p_pos", "p_ng", "n_iter")
"""The settings that exist only with ``augment: tang``."""


def tang_request(params: dict) -> list[tuple[str, dict]]:
    """``[("tang", rates)]`` when a trial's settings ask for Tang augmentation, else ``[]``."""
    if params.get("augment", "none") != "tang":
        return []
    return [("tang", {k: params.get(k, TANG_PARAMS[k].default) for k in TANG_RATES})]


def build_transfer_sets(requests: list[tuple[str, dict]], source: TransferSource, *,
                        device: str = "cpu", stage=None) -> list[TransferSet]:
    """The requested transfer sets, from the cache or built now (once per key, under a lock).

    Args:
        requests: ``(kind, settings)`` pairs from a method's ``transfer_requests``.
        source: the sweep's training data, teacher and cache.
        device: where a generator trains and the teacher labels when the set is built here.
        stage: ``stages.transfer_sets`` resolved (:class:`raykd.stages.StagePlan`): a set
            missing from the cache is built by a Ray task with those resources (CUDA when torch
            sees a GPU there) and this call waits for it; None: built in this process on ``device``.

    Raises:
        ValueError: an unknown kind or impossible settings.
    """
    unknown = [kind for kind, _ in requests if kind not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown transfer set kind {unknown[0]!r}; known: {', '.join(_BUILDERS)}")
    if stage is None:
        return [build_one(kind, settings, source, device) for kind, settings in requests]
    import ray

    sets: list[TransferSet | None] = [cached_set(kind, settings, source) for kind, settings in requests]
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    # placement_group=None: the build is not part of the asking trial's placement group (Ray Train
    # captures child tasks into it), so it goes to whichever node has the stage's resources
    remote = ray.remote(build_one).options(max_retries=1, **stage.ray_options(),
                                           scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None))
    refs = {i: remote.remote(kind, settings, source, None) for i, (kind, settings) in enumerate(requests)
            if sets[i] is None}
    for i, ref in refs.items():
        sets[i] = ray.get(ref)
    return sets


def build_one(kind: str, settings: dict, source: TransferSource, device: str | None = None) -> TransferSet:
    """One transfer set from the cache, or built and teacher-labelled now (the body of a build task).

    Args:
        device: ``cpu`` or ``cuda``; None: CUDA when torch sees a GPU in this process (a Ray task
            on a node whose advertised GPU torch cannot use runs on the CPU).
    """
    import json

    in_task = device is None
    if in_task:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    built = ensure_transfer_set(kind, settings, source, _BUILDERS[kind](settings, source, device), device=device)
    if in_task and built.built:
        import ray

        (built.folder / "built_on.json").write_text(json.dumps({"node": ray.get_runtime_context().get_node_id(),
                                                                "device": device}))
    return built


def cached_set(kind: str, settings: dict, source: TransferSource) -> TransferSet | None:
    """The transfer set for ``(kind, settings)`` if it is already in the cache (reads only)."""
    import json

    from raykd.transfer.store import transfer_key

    key = transfer_key(kind, settings, source)
    folder = Path(source.cache_dir) / "transfer_sets" / key
    if not (folder / "meta.json").is_file():
        return None
    return TransferSet(folder, key, False, json.loads((folder / "meta.json").read_text()))


def _tang_builder(settings: dict, source: TransferSource, device: str):
    from raykd.teachers.load import load_tokenizer
    from raykd.transfer.augment import TangSettings, tang_chunks

    rates = TangSettings(p_mask=settings["p_mask"], p_pos=settings["p_pos"], p_ng=settings["p_ng"],
                         n_iter=settings["n_iter"] or None)
    mask = load_tokenizer(source.teacher_path).mask_token or "[MASK]"

    def build(train: "pd.DataFrame"):
        # chunk by chunk (the store tokenises, labels and writes a shard at a time): memory grows with
        # the shard size, not with the millions of rows a Tang set of MNLI or QQP has
        stats = {"source_examples": len(train), "augmented": 0, "iterations": rates.iterations("text_b" in train)}

        def chunks():
            for chunk in tang_chunks(train, rates, seed=source.seed, mask_token=mask):
                stats["augmented"] += len(chunk)
                yield chunk

        return chunks(), stats

    return build


def _generation_builder(settings: dict, source: TransferSource, device: str):
    """Sample the cached generator of ``settings["generator"]`` (trained first if no set has trained it)."""
    from raykd.transfer.generate import GeneratorSettings, SamplingSettings
    from raykd.transfer.generators import ensure_generator, sample_count

    generator = GeneratorSettings(**settings["generator"])
    sampling = SamplingSettings(**settings["sampling"])

    def build(train: "pd.DataFrame"):
        cached = ensure_generator(generator, source, pretrain=bool(settings.get("pretrain_ood")), device=device)
        n = sample_count(settings["multiple"], settings.get("max_samples", 0), len(train))
        out = cached.generator.sample(n, sampling, seed=source.seed)
        return out.frame, {**out.stats, "source_examples": len(train), "generator_key": cached.key,
                           "generator_trained": float(cached.built)}

    return build


_BUILDERS = {"tang": _tang_builder, "generation": _generation_builder}
"""Transfer-set kind -> ``builder(settings, source, device)`` returning the build function."""
