"""Ray Tune's per-trial files -> plain :class:`~raykd.records.TrialResult` records.

The boundary after which no Ray type exists. It reads the files Tune writes as trials run
(``params.json``, ``result.json``, ``error.txt`` in each trial folder of ``<sweep>/tune``), so it
works on finished sweeps, interrupted ones and sweeps copied from a cluster, without Ray.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raykd.errors import RaykdInputError
from raykd.records import SELECTED_KEY, SELECTION_KEY, TrialResult

__all__ = ["read_trials", "read_sweep_meta", "REPORT_META_KEYS", "flatten_settings", "record_from_result", "split_result", "last_line",
           "BOOKKEEPING_KEYS"]

BOOKKEEPING_KEYS = ("node_id", "worker_pid", "start_epoch")
"""Where and how a trial ran (its rank-0 node and process, the epoch it resumed from): MLflow tags, not metrics."""
_CONSTANT_KEYS = {"student_params", "student_params_non_embedding", "compression_ratio", "shared_params",
                  "latency_ms", "best_metric", "best_epoch", "tasks_done"}

_TUNE_KEYS = {"final", "checkpoint_dir", "checkpoint_path", "metric", "best_metric", "best_epoch", "epoch",
              "train_loss", "train_seconds", "examples_per_s", "student_params", "student_params_non_embedding",
              "compression_ratio", "latency_ms", "start_epoch", "worker_pid", "trial_id", "training_iteration", "time_this_iter_s",
              "time_total_s", "timestamp", "date", "pid", "hostname", "node_ip", "done", "config",
              "time_since_restore", "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint",
              "tasks_done", "shared_params", "node_id", SELECTED_KEY, SELECTION_KEY}


def flatten_settings(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A trial's nested config flattened with ``/`` (``vanilla/temperature``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            break
    return rows


def split_result(result: dict) -> tuple[dict[str, float], dict[str, float], dict[str, str]]:
    """One epoch's result, split into what MLflow draws as a curve, what is fixed per trial, and bookkeeping.

    Returns:
        ``(curves, constants, bookkeeping)``: per-epoch numbers (dev metrics, losses, throughput,
        data-free diagnostics); numbers fixed for the trial (sizes, transfer-set counts, latency);
        and :data:`BOOKKEEPING_KEYS` as text.
    """
    curves, constants, bookkeeping = {}, {}, {}
    for key, value in result.items():
        if key in BOOKKEEPING_KEYS:
            bookkeeping[key] = str(value)
        elif key in _TUNE_KEYS - _CONSTANT_KEYS - {"metric", "train_loss", "train_seconds", "examples_per_s"} \
                or key.startswith(("time_", "iterations_", "training_")) \
                or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        elif key in _CONSTANT_KEYS or key.endswith("/params") or key.startswith("transfer_") or "/transfer_" in key:
            constants[key] = value
        else:
            curves[key] = value
    return curves, constants, bookkeeping


def record_from_result(trial_id: str, config: dict, results: list[dict], metric_name: str,
                       error: str | None = None) -> TrialResult:
    """Build a record from a trial's config and its reported results (oldest first).

    The selected epoch's dev metrics are those the final result holds under ``selected`` (reported
    with the checkpoint the trial keeps); for a trial still running, those of the epoch named by
    the last ``best_epoch``.
    """
    last = results[-1] if results else {}
    epochs = [r for r in results if "epoch" in r and not r.get("final")]
    best_epoch = last.get("best_epoch")
    best = last.get(SELECTED_KEY) or next((r for r in reversed(epochs) if r.get("epoch") == best_epoch),
                                          epochs[-1] if epochs else {})
    metrics = {k: float(v) for k, v in best.items()  # transfer_* describe the training set, not dev
               if k not in _TUNE_KEYS and not k.startswith("transfer_") and not k.endswith("/best_epoch")
               and "/transfer_" not in k and isinstance(v, (int, float))
               and not isinstance(v, bool)}
    status = "ERROR" if error else "TERMINATED" if last.get("final") else "RUNNING" if results else "PENDING"
    latency = next((r["latency_ms"] for r in reversed(results) if r.get("latency_ms") is not None), None)
    return TrialResult(
        trial_id=trial_id, status=status, method=config.get("method"), student=config.get("student"),
        settings=flatten_settings(config), metric_name=metric_name,
        metric=best.get("metric", last.get("best_metric")) if last.get(SELECTED_KEY) else last.get("best_metric"),
        metrics=metrics, student_params=last.get("student_params"),
        student_params_non_embedding=last.get("student_params_non_embedding"),
        compression_ratio=last.get("compression_ratio"), latency_ms=latency,
        epochs_done=int(max((r.get("epoch", 0) for r in epochs), default=last.get("epoch", 0) or 0)),
        best_epoch=best.get("epoch"),
        checkpoint_dir=last.get("checkpoint_dir"), error=error, transfer_examples=last.get("transfer_examples"),
    )


def read_trials(tune_dir: str | Path, metric_name: str) -> list[TrialResult]:
    """Every trial Tune has started in ``tune_dir``, as records sorted by trial id.

    Args:
        tune_dir: the Tune experiment folder (``<sweep>/tune``).
        metric_name: the task's primary metric, recorded on each record.
    """
    records = []
    for folder in sorted(Path(tune_dir).glob("trial-*")):
        params = folder / "params.json"
        if not params.is_file():
            continue
        error_file = folder / "error.txt"
        error = last_line(error_file.read_text()) if error_file.is_file() else None
        records.append(record_from_result(folder.name.removeprefix("trial-"), json.loads(params.read_text()),
                                          _read_results(folder / "result.json"), metric_name, error))
    return records


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` (a traceback's exception line), or ``unknown error``."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def read_sweep_meta(sweep_dir: str | Path) -> dict:
    """The ``sweep.json`` a sweep writes before its first trial.

    Raises:
        RaykdInputError: the folder is not a raykd sweep folder.
    """
    path = Path(sweep_dir) / "sweep.json"
    if not path.is_file():
        raise RaykdInputError(f"{sweep_dir} is not a raykd sweep folder (no sweep.json); "
                              "give a folder under your --storage, e.g. raykd_runs/sst2-demo-20260101-120000")
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise RaykdInputError(f"{path} is damaged (not the JSON raykd wrote); "
                              "re-run the sweep or restore the file") from None
    teacher = meta.get("teacher")
    missing = [k for k, kind in REPORT_META_KEYS.items() if not isinstance(meta.get(k), kind)]
    if isinstance(teacher, dict) and not (isinstance(teacher.get("path"), str) and isinstance(teacher.get("params"), int)):
        missing.append("teacher.path/params")
    if missing:
        raise RaykdInputError(f"{path} lacks {', '.join(missing)} (or has the wrong type): it is damaged or was not "
                              "written by raykd sweep; restore the file")
    return meta


REPORT_META_KEYS = {"name": str, "task": str, "metric_name": str, "teacher": dict, "baseline": dict}
"""The keys (and types) of ``sweep.json`` that the report reads."""
