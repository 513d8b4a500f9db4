"""Wall time of each stage of a running sweep, kept beside its estimate in ``sweep.json`` and the report."""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from raykd.sweep.estimate import STAGE_LABELS

if TYPE_CHECKING:
    from raykd.sweep.estimate import SweepEstimate

__all__ = ["StageClock"]


class StageClock:
    """The wall seconds each stage of a running sweep takes, beside its estimate.

    Transfer sets are built inside trials, so their actual time is the ``seconds=`` of the
    ``<cache>/transfer_sets/builds.log`` lines written after the clock started (the sets' own
    ``build_seconds``).

    Args:
        cache: the sweep's cache folder (``<storage>/cache``).
        estimate: the estimate made at the start, or None (``--no-estimate``).
    """

    def __init__(self, cache: Path, estimate: "SweepEstimate | None" = None):
        self.cache, self.estimate = Path(cache), estimate
        self.actual: dict[str, float] = {}
        self._log = self.cache / "transfer_sets" / "builds.log"
        self._offset = self._log.stat().st_size if self._log.is_file() else 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (kept even when the block raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.actual[name] = self.actual.get(name, 0.0) + time.perf_counter() - started

    def transfer_seconds(self) -> float:
        """Build seconds of the transfer sets built since the clock started."""
        if not self._log.is_file():
            return 0.0
        with open(self._log, "rb") as log:
            log.seek(self._offset)
            text = log.read().decode(errors="replace")
        return float(sum(float(v) for v in re.findall(r"(?:^|\s)seconds=([0-9.]+)", text)))

    def stages(self) -> dict[str, dict[str, Any]]:
        """``{stage: {"estimate": s, "actual": s, "status": ...}}`` (None where unknown), in run order."""
        estimates = self.estimate.by_stage() if self.estimate else {}
        actual = {**self.actual, "transfer_sets": self.transfer_seconds()}
        out = {}
        for name in STAGE_LABELS:
            e = estimates.get(name)
            out[name] = {"estimate": round(e.seconds, 1) if e else None,
                         "actual": round(actual[name], 1) if name in actual else None,
                         "status": e.status if e else None}
        return out

    def record(self) -> dict[str, Any]:
        """What ``sweep.json`` keeps: ``stages`` (:meth:`stages`) and ``estimate`` (where calibrated, how long)."""
        info = {"where": self.estimate.where, "calibration_s": round(self.estimate.calibration_s, 1),
                "total_s": round(self.estimate.total, 1)} if self.estimate else None
        return {"stages": self.stages(), "estimate": info}

    def finish(self, sweep_dir: str | Path, *, tracker=None, echo: Callable[[str], Any] = print,
               resumed: bool = False) -> None:
        """After the trials: write the stages into ``sweep.json`` (``resumed_stages`` for a ``--resume``),
        write ``stages.csv``, log it to the sweep's MLflow parent run and print estimate vs actual.

        Bookkeeping only: a failure here is one warning line through ``echo``, never the sweep's error.
        """
        try:
            self._finish(Path(sweep_dir), tracker, resumed)
        except Exception as err:  # noqa: BLE001 - the trials are done; their report must not fail on this
            echo(f"warning: stage times not recorded ({type(err).__name__}: {err})")

    def _finish(self, sweep_dir: Path, tracker, resumed: bool) -> None:
        from rich.console import Console

        from raykd.report.stages import stage_times_table, write_stage_times

        meta = json.loads((sweep_dir / "sweep.json").read_text())
        record = self.record()
        if resumed:
            meta.setdefault("resumed_stages", []).append(record)
        else:
            meta.update(record)
        (sweep_dir / "sweep.json").write_text(json.dumps(meta, indent=1))
        path = write_stage_times(record["stages"], sweep_dir)
        if tracker is not None and meta.get("mlflow_parent_run_id"):
            tracker.log_artifact(meta["mlflow_parent_run_id"], path)
        Console(width=160).print(stage_times_table(record["stages"]))
