"""A few real batches of each heavy workload, timed on the hardware that will run it (the cost estimate's input).

:func:`calibrate` runs a :class:`CalibrationJob`: it tokenises a seeded sample of the task's real
examples and times, with the threads (and the GPU, where torch sees one) of the stage the job
stands for, a few batches of

* the teacher's forward pass (soft targets, transfer-set labelling, evaluation during fine-tuning),
* teacher fine-tuning steps (forward, backward, fused AdamW step on the base encoder with a new head),
* student training steps of every architecture the space can sample (up to :data:`MAX_CONFIGS` per
  family) and one evaluation pass, at the space's batch size,
* Tang augmentation and generator training and sampling, when the space builds those transfer sets.

Batches are cut like the real loops cut them: length-sorted windows of the sample, taken at spread
quantiles of its lengths, so each measured batch pads about as much as a real one of that length.
Every workload becomes a :class:`Cost`, seconds = ``per_call + per_unit * units`` (units: padded
tokens ``B x T`` of a batch, or examples), fitted to the timed batches; the estimate then applies it
to the real split's batches. On this project's 2-core machine the demo space's calibration takes
about 3-5 s.

:func:`calibrate` is a plain function: the sweep runs it in-process before Ray starts, or as a Ray
task with a stage's resources on a cluster (:func:`raykd.sweep.estimate.run_calibrations`), so it
measures the worker nodes' hardware.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

__all__ = ["Cost", "CalibrationJob", "Measurements", "calibrate", "calibrate_at_worker_priority", "MAX_CONFIGS",
           "spread_windows", "RAY_WORKER_NICENESS"]

MAX_CONFIGS = 6
"""Student architectures calibrated per family at most (beyond: numeric choices at their middle value)."""

_QUANTILES = (0.25, 0.75)
"""Where in the sorted sample the timed batches sit: two lengths, so a fit separates per-batch from per-token cost."""


RAY_WORKER_NICENESS = 15
"""The nice value Ray's raylet gives every worker process (its ``worker_niceness`` setting): the stages'
replicas, tasks and trial workers all run at it, behind any un-niced program on the same cores."""

BUDGET_S = {"teacher_forward": 1.0, "teacher_train": 2.0, "students": 1.5}
"""Seconds each workload keeps timing its windows (full passes; at least one): a loaded or slow machine
gets fewer repeats, a fast one more, so the calibration's length stays about the same. ``students``
is shared by a family's architectures."""
_EVAL_BATCH = 256
"""Examples per evaluation forward pass (:func:`raykd.distill.evaluate.predict`)."""


@dataclass(frozen=True)
class Cost:
    """Seconds of one call: ``per_call + per_unit * units`` (units: padded tokens, or examples).

    Attributes:
        per_call: fixed seconds per batch (optimizer step, kernel launches) or per build.
        per_unit: seconds per padded token (``B x T``) or per example.
    """

    per_call: float
    per_unit: float

    def seconds(self, calls: float, units: float) -> float:
        """Seconds of ``calls`` batches holding ``units`` padded tokens (or examples) in all."""
        return calls * self.per_call + units * self.per_unit

    @classmethod
    def fit(cls, seconds: list[float], units: list[float]) -> "Cost":
        """Least squares over timed calls, both terms kept >= 0 (one point, or a negative intercept: all per
        unit; a slope <= 0, i.e. no measurable growth with the units: the mean, all per call)."""
        s, u = np.asarray(seconds, float), np.asarray(units, float)
        if len(s) >= 2 and np.ptp(u) > 0:
            slope, intercept = np.polyfit(u, s, 1)
            if slope > 0 and intercept >= 0:
                return cls(float(intercept), float(slope))
            if slope > 0:
                return cls(0.0, float(s.sum() / u.sum()))
            return cls(float(s.mean()), 0.0)
        return cls(0.0, float(s.sum() / max(u.sum(), 1.0)))


@dataclass(frozen=True)
class CalibrationJob:
    """What to time, with how many threads, for one stage.

    Attributes:
        frame: a seeded sample of the task's real examples (``text_a``, optional ``text_b``, ``label``).
        teacher_path: the teacher, or the base encoder to fine-tune (``fresh_head``).
        max_length: tokens per example.
        num_labels: outputs of the task (1: regression).
        threads: torch threads (the stage's CPUs per unit, at most the node's cores).
        gpu: use CUDA (with bf16 autocast) where torch sees a GPU.
        fresh_head: load ``teacher_path`` with a new classification head (a base encoder).
        teacher_forward: examples per teacher forward pass to time (0: none).
        teacher_train: examples per teacher fine-tuning step to time (0: none).
        students: family -> ``[(architecture settings, probability), ...]`` to time.
        student_batch: family -> examples per training step.
        teacher_config: the teacher's ``config.json`` (students initialised from it).
        tang: Tang rates (``p_mask``, ``p_pos``, ``p_ng``, ``n_iter``) to time, or None.
        generation: a ``generation`` transfer request's settings to time, or None.
    """

    frame: Any
    teacher_path: str
    max_length: int
    num_labels: int
    threads: int = 1
    gpu: bool = False
    fresh_head: bool = False
    teacher_forward: int = 0
    teacher_train: int = 0
    students: dict[str, list[tuple[dict, float]]] = field(default_factory=dict)
    student_batch: dict[str, int] = field(default_factory=dict)
    teacher_config: dict | None = None
    tang: dict | None = None
    generation: dict | None = None


@dataclass(frozen=True)
class Measurements:
    """What one :func:`calibrate` call measured (costs in seconds; see :class:`Cost`).

    Attributes:
        seconds: wall time of the calibration itself.
        threads, device: where it ran.
        tokenize: per example (``per_unit``).
        teacher_load: seconds to load the teacher.
        teacher_latency: seconds of one batch-1 teacher forward on one CPU thread (its latency measurement).
        teacher_forward: per batch + per padded token, inference mode.
        teacher_train: per step + per padded token, fine-tuning.
        students: family -> per step + per padded token, averaged over its architectures by probability.
        student_eval: family -> per padded token of an evaluation forward pass.
        student_build: family -> seconds to build one student (teacher initialisation included).
        architectures: family -> ``[(architecture settings, training step cost, evaluation cost), ...]``,
            each architecture timed (what ``students`` averages), to cost the trials whose
            architecture is known before they run (:func:`raykd.sweep.search.first_draws`).
        tang: per build + per source example of the augmentation rules (labelling not included).
        tang_rows: novel augmented examples per source example and pass (times a task's passes,
            :meth:`~raykd.transfer.augment.TangSettings.iterations`, which differ for pair tasks).
        generator_train: per training + per example-epoch of the generator.
        generator_sample: per call + per sample drawn.
    """

    seconds: float
    threads: int
    device: str
    tokenize: Cost | None = None
    teacher_load: float = 0.0
    teacher_latency: float = 0.0
    teacher_forward: Cost | None = None
    teacher_train: Cost | None = None
    students: dict[str, Cost] = field(default_factory=dict)
    student_eval: dict[str, Cost] = field(default_factory=dict)
    student_build: dict[str, float] = field(default_factory=dict)
    architectures: dict[str, list[tuple[dict, Cost, Cost]]] = field(default_factory=dict)
    tang: Cost | None = None
    tang_rows: float | None = None
    generator_train: Cost | None = None
    generator_sample: Cost | None = None


def calibrate(job: CalibrationJob) -> Measurements:
    """Time a few batches of every workload ``job`` names, with ``job.threads`` torch threads.

    Returns:
        :class:`Measurements`; the thread setting of the process is restored afterwards.
    """
    import torch

    from raykd._quiet import quiet_libraries
    from raykd.data.encoding import encode_frame
    from raykd.teachers.load import load_tokenizer

    quiet_libraries()
    started, previous = time.perf_counter(), torch.get_num_threads()
    threads = max(1, min(int(job.threads), os.cpu_count() or 1))
    torch.set_num_threads(threads)
    try:
        device = "cuda" if job.gpu and torch.cuda.is_available() else "cpu"
        tokenizer = load_tokenizer(job.teacher_path)
        tick = time.perf_counter()
        sample = encode_frame(tokenizer, job.frame, job.max_length)
        found: dict[str, Any] = {"tokenize": Cost(0.0, (time.perf_counter() - tick) / max(len(sample), 1))}
        sample.teacher_logits = np.random.default_rng(0).normal(size=(len(sample), job.num_labels)).astype(np.float32)
        timer = _Timer(device, sample, tokenizer.pad_token_id)
        if job.teacher_forward or job.teacher_train:
            found.update(_teacher(job, timer))
        if job.students:
            found.update(_students(job, timer))
        if job.tang is not None:
            found.update(_tang(job, tokenizer))
        if job.generation is not None:
            found.update(_generation(job, tokenizer, device))
        return Measurements(seconds=time.perf_counter() - started, threads=threads, device=device, **found)
    finally:
        torch.set_num_threads(previous)


def calibrate_at_worker_priority(job: CalibrationJob, niceness: int = RAY_WORKER_NICENESS) -> Measurements:
    """:func:`calibrate` in a thread of its own at ``niceness``, as the Ray workers that will do the work run.

    On a machine shared with other programs a nice-15 worker gets far less CPU than this (nice-0)
    process would measure; on an idle machine it makes no difference. Linux keeps the nice value per
    thread and torch's worker threads inherit it from the thread that starts them, so this process's own
    threads keep their priority (torch may keep one idle worker of the finished thread). Elsewhere it is
    a plain :func:`calibrate` call.
    """
    import sys
    import threading

    if not sys.platform.startswith("linux"):
        return calibrate(job)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, max(niceness, os.getpriority(os.PRIO_PROCESS, 0)))  # this thread only
            out["result"] = calibrate(job)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = err

    thread = threading.Thread(target=run, name="raykd-calibration")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["result"]


def spread_windows(lengths: np.ndarray, batch: int, quantiles: tuple[float, ...]) -> list[np.ndarray]:
    """Batches of ``batch`` examples of similar length, centred at ``quantiles`` of the sorted ``lengths``."""
    order = np.argsort(lengths, kind="stable")
    size = max(1, min(batch, len(order)))
    last = len(order) - size
    return [order[int(round(q * last)):int(round(q * last)) + size] for q in quantiles]


class _Timer:
    """Times one model call on a window of the sample (CUDA synchronised, batch built inside the timing)."""

    def __init__(self, device: str, sample, pad_id: int):
        self.device, self.sample, self.pad_id = device, sample, pad_id

    def time(self, call: Callable[[dict], Any], index: np.ndarray) -> tuple[float, int]:
        """``(seconds, padded tokens)`` of ``call(batch)`` on the examples at ``index``."""
        import torch

        from raykd.distill.batching import to_tensors

        if self.device == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        call(to_tensors(self.sample, index, self.pad_id, self.device))
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - tick, len(index) * int(self.sample.lengths[index].max())

    def fit(self, call: Callable[[dict], Any], batch: int, quantiles=_QUANTILES, budget_s: float = 0.0) -> Cost:
        """A warm-up call on a few short examples (lazy initialisation), then passes over the windows at
        ``quantiles`` until ``budget_s`` is spent (two passes at least); each window's fastest pass is fitted.

        A stage runs thousands of batches, warm: the first call at a new shape (allocator, kernel
        selection) and a moment taken by another process only ever make a call slower, so the
        fastest of the passes is the one a long run resembles (one pass timed alone varied by a third
        between two calibrations on the same idle machine)."""
        self.time(call, spread_windows(self.sample.lengths, min(batch, 8), (0.1,))[0])
        windows = spread_windows(self.sample.lengths, batch, quantiles)
        passes, started = [], time.perf_counter()
        while len(passes) < 2 or time.perf_counter() - started < budget_s:
            passes.append([self.time(call, w) for w in windows])
        fastest = [min(p[i] for p in passes) for i in range(len(windows))]
        return Cost.fit([t for t, _ in fastest], [u for _, u in fastest])


def _forward(model, device: str):
    import torch

    def call(batch: dict):
        with torch.inference_mode(), _autocast(device):
            model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])

    return call


def _train(model, objective, batch_size: int, device: str):
    """One real optimiser step (:func:`raykd.distill.loop.train_step`, fused AdamW) per call."""
    from raykd.distill.loop import LoopSettings, LoopState, build_optimiser, train_step

    settings = LoopSettings(epochs=1, batch_size=batch_size, lr=1e-5, device=device,
                            amp="bf16" if device == "cuda" else None)
    optimizer, scheduler = build_optimiser(model, settings, 100, LoopState())
    model.train()

    def call(batch: dict):
        train_step(model, lambda b: model(b["input_ids"], b["attention_mask"], b["token_type_ids"]), objective,
                   batch, optimizer, scheduler, settings, epoch=1, step=0)

    return call


def _teacher(job: CalibrationJob, timer: _Timer) -> dict:
    from raykd.losses import hard_label_loss
    from raykd.teachers.load import load_teacher, teacher_as_student

    tick = time.perf_counter()
    if job.fresh_head:
        from transformers import AutoModelForSequenceClassification

        hf = AutoModelForSequenceClassification.from_pretrained(job.teacher_path, num_labels=job.num_labels)
    else:
        hf = load_teacher(job.teacher_path)
    model = teacher_as_student(hf).to(timer.device)
    found: dict[str, Any] = {"teacher_load": time.perf_counter() - tick}
    if job.teacher_forward:
        model.eval()
        found["teacher_forward"] = timer.fit(_forward(model, timer.device), job.teacher_forward,
                                             budget_s=BUDGET_S["teacher_forward"])
        found["teacher_latency"] = _latency(model, timer)
    if job.teacher_train:
        regression = job.num_labels == 1

        def objective(logits, batch):
            return hard_label_loss(logits, batch["labels"], regression), {}

        found["teacher_train"] = timer.fit(_train(model, objective, job.teacher_train, timer.device), job.teacher_train,
                                           budget_s=BUDGET_S["teacher_train"])
    return found


def _latency(model, timer: _Timer) -> float:
    """Median seconds of a batch-1 CPU forward on one thread (as :func:`~raykd.distill.evaluate.measure_latency`)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = model.to("cpu")
        one = spread_windows(timer.sample.lengths, 1, (0.5,))[0]
        cpu = _Timer("cpu", timer.sample, timer.pad_id)
        return float(np.median([cpu.time(_forward(model, "cpu"), one)[0] for _ in range(4)][1:]))
    finally:
        torch.set_num_threads(previous)
        model.to(timer.device)


def _students(job: CalibrationJob, timer: _Timer) -> dict:
    """Each family: its architectures' step costs averaged by probability, one real build, and one evaluation
    pass of its most likely architecture (the others' scaled by their per-token training cost)."""
    import torch

    from raykd.methods.vanilla import VanillaKD
    from raykd.students import StudentContext, build_student

    ctx = StudentContext(num_labels=job.num_labels, is_pair="text_b" in job.frame, vocab_size=int(
        job.teacher_config["vocab_size"]), pad_token_id=timer.pad_id, max_length=job.max_length,
        teacher_path=job.teacher_path, teacher_config=job.teacher_config)
    objective = VanillaKD("mse", 1.0, 0.0, regression=job.num_labels == 1).objective
    train, evals, builds, each = {}, {}, {}, {}
    for family, configs in job.students.items():
        batch = job.student_batch.get(family, 64)
        weights = np.array([p for _, p in configs]) / sum(p for _, p in configs)
        likely, steps, per_token = int(weights.argmax()), [], 0.0
        for i, (params, _) in enumerate(configs):
            torch.manual_seed(0)  # the weights do not change the speed: no teacher initialisation here
            model = build_student(family, params, ctx, init_from_teacher=False).to(timer.device)
            steps.append(timer.fit(_train(model, objective, batch, timer.device), batch,
                                   budget_s=BUDGET_S["students"] / len(configs)))
            if i == likely:
                model.eval()
                seconds, tokens = timer.time(_forward(model, timer.device),
                                             spread_windows(timer.sample.lengths, _EVAL_BATCH, (0.5,))[0])
                per_token = seconds / tokens
        train[family] = _mean(steps, weights)

        def evaluation(step: Cost) -> Cost:  # the likely one's, scaled by the per-token training cost
            return Cost(0.0, per_token * (step.per_unit / steps[likely].per_unit if steps[likely].per_unit > 0 else 1.0))

        evals[family] = evaluation(train[family])
        each[family] = [(dict(params), step, evaluation(step)) for (params, _), step in zip(configs, steps)]
        tick = time.perf_counter()
        build_student(family, configs[likely][0], ctx)  # once as a trial builds it (teacher initialisation)
        builds[family] = time.perf_counter() - tick
    return {"students": train, "student_eval": evals, "student_build": builds, "architectures": each}


def _mean(costs: list[Cost], weights: np.ndarray) -> Cost:
    return Cost(float(sum(w * c.per_call for c, w in zip(costs, weights))),
                float(sum(w * c.per_unit for c, w in zip(costs, weights))))


def _tang(job: CalibrationJob, tokenizer) -> dict:
    """Tang's rules on 16 and 48 real examples, after a warm-up on 2 (the tagger's lazy load is not a cost per
    build): the per-build and the per-example part, and the novel rows per source example and pass."""
    from raykd.transfer.augment import TangSettings, tang_augment

    rates = TangSettings(p_mask=job.tang["p_mask"], p_pos=job.tang["p_pos"], p_ng=job.tang["p_ng"],
                         n_iter=job.tang["n_iter"] or None)
    mask = tokenizer.mask_token or "[MASK]"
    tang_augment(job.frame.iloc[:2], rates, seed=0, mask_token=mask)
    seconds, sizes, rows = [], [], 0
    for n in (16, 48):
        part = job.frame.iloc[:n]
        tick = time.perf_counter()
        rows = len(tang_augment(part, rates, seed=0, mask_token=mask))
        seconds.append(time.perf_counter() - tick)
        sizes.append(len(part))
    passes = rates.iterations("text_b" in job.frame)
    return {"tang": Cost.fit(seconds, sizes), "tang_rows": rows / max(sizes[-1], 1) / max(passes, 1)}


def _generation(job: CalibrationJob, tokenizer, device: str) -> dict:
    """One generator epoch on 32 and 96 real texts, then 16 and 48 samples: per example-epoch and per sample
    drawn (a one-epoch generator's samples are mostly filtered out; a trained one's mostly kept)."""
    from raykd.transfer.generate import Generator, GeneratorSettings, SamplingSettings

    settings = replace(GeneratorSettings(**job.generation["generator"]), epochs=1)
    sampling = SamplingSettings(**job.generation["sampling"])
    texts = [str(t) for t in job.frame["text_a"]]
    pairs = [str(t) for t in job.frame["text_b"]] if "text_b" in job.frame else None
    train_s, sample_s, sizes, drawn = [], [], [], []
    generator = None
    for n in (32, 96):
        tick = time.perf_counter()
        generator = Generator.train(texts[:n], pairs[:n] if pairs else None, settings, tokenizer=tokenizer, seed=0,
                                    device=device, progress=False)
        train_s.append(time.perf_counter() - tick)
        sizes.append(min(n, len(texts)))
    for n in (16, 48):
        tick = time.perf_counter()
        drawn.append(max(1.0, generator.sample(n, sampling, seed=0).stats.get("drawn", n)))
        sample_s.append(time.perf_counter() - tick)
    return {"generator_train": Cost.fit(train_s, sizes), "generator_sample": Cost.fit(sample_s, drawn)}


def _autocast(device: str):
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
