"""Fine-tune a pretrained encoder into a teacher for a task (``raykd teacher fine-tune``).

Standard sequence-classification fine-tuning: a fresh head on the base encoder, cross-entropy on
gold labels (MSE for regression), AdamW with linear warm-up and decay, run by raykd's own
distillation loop with a gold-label objective. The output folder is a normal Hugging Face model
folder (weights, config with the task's label names, tokenizer) plus ``training_card.json`` and
``README.md`` stating the dev metrics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from raykd.data.tasks import TaskSpec

__all__ = ["FineTuneSettings", "fine_tune"]


@dataclass(frozen=True)
class FineTuneSettings:
    """Fine-tuning settings (defaults follow common BERT GLUE recipes, shortened for CPUs).

    Attributes:
        epochs: passes over the training split.
        lr: peak learning rate.
        batch_size: examples per step.
        max_length: tokens per example.
        weight_decay: AdamW weight decay.
        warmup_ratio: share of steps warming up.
        seed: seed of the head's initialisation and the batch order.
    """

    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    max_length: int = 128
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    seed: int = 0


def _base_model(base: str, task: TaskSpec):
    import torch
    from transformers import AutoModelForSequenceClassification

    names = task.label_names or ("score",)
    # fp32 weights whatever the checkpoint holds (a base saved in fp16 would train to NaN on the CPU;
    # on CUDA the forward passes run under bf16 autocast over these fp32 master weights). A base that
    # is already a classifier with another label count (an SST-2 teacher as the base of STS-B's) gets
    # a fresh head instead of a size-mismatch error inside the Ray task; its encoder is kept.
    return AutoModelForSequenceClassification.from_pretrained(
        base, dtype=torch.float32, num_labels=task.num_labels, id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)}, ignore_mismatched_sizes=True,
        problem_type="regression" if task.is_regression else "single_label_classification")


def fine_tune(task: TaskSpec, base: str, out: str | Path, frames: dict[str, Any], settings: FineTuneSettings,
              *, progress: Callable[[str, int], Callable[[int], None]] | None = None, device: str = "cpu",
              resume_dir: str | Path | None = None) -> dict[str, float]:
    """Fine-tune ``base`` on ``frames["train"]`` and save a teacher to ``out``.

    Args:
        task: the task (its labels become the head's ``id2label``).
        base: a pretrained encoder folder or hub id.
        out: output folder (created).
        frames: ``train`` and the task's eval splits as DataFrames.
        settings: optimisation settings.
        progress: optional progress-bar factory (see :func:`raykd.sweep.stage.rich_progress`).
        device: ``cpu`` or ``cuda[:i]``; on CUDA the forward passes run under bf16 autocast.
        resume_dir: a folder for a checkpoint after every epoch (weights, optimiser and schedule
            state, the epochs' metrics); a run given a folder that holds one continues after its
            last epoch, so a restarted Ray task loses at most one epoch. None: no checkpoints.

    Returns:
        Dev metrics of the saved teacher.
    """
    import torch

    from raykd.data.encoding import encode_frame
    from raykd.distill.evaluate import evaluate_splits
    from raykd.distill.loop import LoopSettings, fit
    from raykd.losses import hard_label_loss
    from raykd.teachers.load import load_tokenizer, teacher_as_student

    tokenizer = load_tokenizer(base)
    encoded = {name: encode_frame(tokenizer, frame, settings.max_length) for name, frame in frames.items()}
    evals = {name: encoded[name] for name in task.eval_splits}
    torch.manual_seed(settings.seed)
    hf_model = _base_model(base, task)
    model = teacher_as_student(hf_model)
    loop = LoopSettings(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                        weight_decay=settings.weight_decay, warmup_ratio=settings.warmup_ratio, seed=settings.seed,
                        device=device, amp="bf16" if device.startswith("cuda") else None)
    history: list[dict] = []
    state = _resume(model, resume_dir, history) if resume_dir else None
    model.to(device)
    remaining = settings.epochs - (state.epoch if state else 0)
    advance = progress(f"fine-tuning {task.name}", remaining * len(encoded["train"])) if progress else None

    def report(metrics: dict, loop_state) -> None:
        history.append(metrics)
        if resume_dir:
            _checkpoint(model, loop_state, history, Path(resume_dir))

    if remaining > 0:
        fit(model, lambda logits, batch: (hard_label_loss(logits, batch["labels"], task.is_regression), {}),
            encoded["train"], loop, evaluate=lambda m: evaluate_splits(m, evals, task, tokenizer.pad_token_id, device),
            primary=task.primary_metric, report=report, pad_id=tokenizer.pad_token_id, on_step=advance, state=state)
    final = {k: v for k, v in history[-1].items() if k not in ("epoch", "best_metric", "best_epoch")}
    hf_model.to("cpu")
    _save(hf_model, tokenizer, Path(out), task, base, settings, final, len(frames["train"]))
    return {k: v for k, v in final.items() if k not in ("train_loss", "train_seconds", "examples_per_s")}


_WEIGHTS, _STATE, _STATE_TENSORS, _HISTORY = "model.safetensors", "state.json", "state.safetensors", "history.json"


def _checkpoint(model, state, history: list[dict], folder: Path) -> None:
    """Write the epoch's weights, loop state and metrics to ``folder`` (aside, then renamed: never half written)."""
    import os
    import shutil

    from safetensors.torch import save_file

    from raykd.distill.state_io import save_state_tree

    tmp = folder.with_name(folder.name + ".writing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / _WEIGHTS))
    save_state_tree({f: getattr(state, f) for f in state.__dataclass_fields__}, tmp / _STATE, tmp / _STATE_TENSORS)
    (tmp / _HISTORY).write_text(json.dumps(history))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _resume(model, folder: str | Path, history: list[dict]):
    """Load the last epoch's checkpoint from ``folder`` into ``model`` and ``history``; None if there is none."""
    from safetensors.torch import load_file

    from raykd.distill.loop import LoopState
    from raykd.distill.state_io import load_state_tree

    folder = Path(folder)
    if not (folder / _HISTORY).is_file():
        return None
    model.load_state_dict(load_file(str(folder / _WEIGHTS)))
    history.extend(json.loads((folder / _HISTORY).read_text()))
    return LoopState(**load_state_tree(folder / _STATE, folder / _STATE_TENSORS))


def _save(model, tokenizer, out: Path, task: TaskSpec, base: str, settings: FineTuneSettings,
          metrics: dict, train_rows: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    dev = {k: round(float(v), 4) for k, v in metrics.items() if k not in ("train_loss", "train_seconds", "examples_per_s")}
    card = {"task": task.name, "base": base, **asdict(settings), "train_rows": train_rows,
            "dev_metrics": dev, "labels": dict(enumerate(task.label_names))}
    (out / "training_card.json").write_text(json.dumps(card, indent=1))
    lines = [f"# raykd teacher: {task.name}", "", f"Fine-tuned from `{base}` on {train_rows} {task.name} training "
             f"examples for {settings.epochs} epoch(s) (lr {settings.lr}, batch {settings.batch_size}, "
             f"max length {settings.max_length}) by `raykd teacher fine-tune`.", "",
             "Dev metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in dev.items()), ""]
    (out / "README.md").write_text("\n".join(lines))
