"""Which transfer sets a trial asks for, and the builders that make them.

A method that trains on task data names extra transfer sets with ``transfer_requests(params)``:
a list of ``(kind, settings)`` pairs, ``tang`` (Tang et al. augmentation of the training split) and
``generation`` (samples of a causal LM trained on it). :func:`build_transfer_sets` returns each from
the cache (:mod:`raykd.transfer.store`), building it first if no trial or sweep has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raykd.domains import ParamSpec
from raykd.transfer.store import TransferSet, TransferSource, ensure_transfer_set

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TANG_PARAMS", "TANG_RATES", "tang_request", "build_transfer_sets"]

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
                        device: str = "cpu") -> list[TransferSet]:
    """The requested transfer sets, from the cache or built now (once per key, under a lock).

    Args:
        requests: ``(kind, settings)`` pairs from a method's ``transfer_requests``.
        source: the sweep's training data, teacher and cache.
        device: where a generator trains and the teacher labels.

    Raises:
        ValueError: an unknown kind or impossible settings.
    """
    builders = {"tang": _tang_builder, "generation": _generation_builder}
    sets = []
    for kind, settings in requests:
        if kind not in builders:
            raise ValueError(f"unknown transfer set kind {kind!r}; known: {', '.join(builders)}")
        sets.append(ensure_transfer_set(kind, settings, source, builders[kind](settings, source, device), device=device))
    return sets


def _tang_builder(settings: dict, source: TransferSource, device: str):
    from raykd.teachers.load import load_tokenizer
    from raykd.transfer.augment import TangSettings, tang_augment

    rates = TangSettings(p_mask=settings["p_mask"], p_pos=settings["p_pos"], p_ng=settings["p_ng"],
                         n_iter=settings["n_iter"] or None)
    mask = load_tokenizer(source.teacher_path).mask_token or "[MASK]"

    def build(train: "pd.DataFrame"):
        frame = tang_augment(train, rates, seed=source.seed, mask_token=mask)
        return frame, {"source_examples": len(train), "augmented": len(frame),
                       "iterations": rates.iterations("text_b" in train)}

    return build


def _generation_builder(settings: dict, source: TransferSource, device: str):
    from raykd.teachers.load import load_tokenizer
    from raykd.transfer.generate import GeneratorSettings, SamplingSettings, generate_transfer_set

    generator = GeneratorSettings(**settings["generator"])
    sampling = SamplingSettings(**settings["sampling"])

    def build(train: "pd.DataFrame"):
        pretrain = None
        if settings.get("pretrain_ood") and source.ood_text:
            import pandas as pd

            pretrain = pd.read_json(source.ood_text, lines=True)["text_a"].astype(str).tolist()
        n = max(1, round(settings["multiple"] * len(train)))
        out = generate_transfer_set(train, generator, sampling, n, tokenizer=load_tokenizer(source.teacher_path),
                                    seed=source.seed, device=device, pretrain_texts=pretrain, progress=True)
        return out.frame, {**out.stats, "source_examples": len(train)}

    return build
