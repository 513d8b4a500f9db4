"""Fast tests of the report stage: Pareto filter, hypervolume, CSV/table/plot output."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from raykd.records import TeacherSummary, TrialResult
from raykd.report import (
    front_table,
    hypervolume,
    markdown_front,
    pareto_frame,
    pareto_mask,
    plot_front,
    trials_frame,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _brute_force_mask(metric: np.ndarray, params: np.ndarray) -> np.ndarray:
    n = len(metric)
    valid = np.isfinite(metric) & np.isfinite(params)
    mask = valid.copy()
    for i in range(n):
        for j in range(n):
            if not (valid[i] and valid[j]):
                continue
            no_worse = metric[j] >= metric[i] and params[j] <= params[i]
            better = metric[j] > metric[i] or params[j] < params[i]
            if no_worse and better:
                mask[i] = False
    return mask


# ----------------------------------------------------------------------------- pareto_mask


def test_pareto_mask_drops_dominated_point():
    metric = np.array([0.9, 0.8, 0.7])
    params = np.array([10.0, 5.0, 8.0])  # third: worse metric and more params than second
    assert pareto_mask(metric, params).tolist() == [True, True, False]


def test_pareto_mask_ties_in_one_objective():
    # same params, lower metric -> dominated; same metric, more params -> dominated
    metric = np.array([0.9, 0.8, 0.9, 0.95])
    params = np.array([5.0, 5.0, 7.0, 20.0])
    assert pareto_mask(metric, params).tolist() == [True, False, False, True]


def test_pareto_mask_keeps_all_duplicates():
    metric = np.array([0.8, 0.8, 0.9, 0.7, 0.7])
    params = np.array([2.0, 2.0, 5.0, 3.0, 3.0])
    assert pareto_mask(metric, params).tolist() == [True, True, True, False, False]


def test_pareto_mask_nan_never_on_front_and_dominates_nothing():
    metric = np.array([np.nan, 0.5, 0.6, np.inf])
    params = np.array([1.0, 2.0, np.nan, 3.0])
    assert pareto_mask(metric, params).tolist() == [False, True, False, False]


def test_pareto_mask_single_and_empty():
    assert pareto_mask(np.array([0.5]), np.array([3.0])).tolist() == [True]
    empty = pareto_mask(np.array([]), np.array([]))
    assert empty.shape == (0,) and empty.dtype == bool


def test_pareto_mask_zero_metric_signed_zero_duplicates():
    metric = np.array([0.0, -0.0, -0.1])
    params = np.array([1.0, 1.0, 2.0])
    assert pareto_mask(metric, params).tolist() == [True, True, False]


def test_pareto_mask_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="1-D"):
        pareto_mask(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pareto_mask_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    # rounded values so that ties and duplicates actually occur
    metric = np.round(rng.uniform(0.5, 0.9, 200), 2)
    params = np.round(rng.uniform(0.1, 20.0, 200), 0)
    metric[rng.choice(200, 5, replace=False)] = np.nan
    assert np.array_equal(pareto_mask(metric, params), _brute_force_mask(metric, params))


# ----------------------------------------------------------------------------- hypervolume


def test_hypervolume_staircase_by_hand():
    # staircase: x in [0.2, 0.5) at height 0.8 - 0.5, x in [0.5, 1.0] at height 0.9 - 0.5
    hv = hypervolume(np.array([0.9, 0.8]), np.array([0.5, 0.2]), ref_metric=0.5, ref_params=1.0)
    assert hv == pytest.approx(0.3 * 0.3 + 0.5 * 0.4)


def test_hypervolume_three_steps_by_hand():
    metric = np.array([0.6, 0.7, 0.85])
    params = np.array([0.1, 0.4, 0.8])
    # widths 0.3, 0.4, 0.2 at heights 0.1, 0.2, 0.35 above ref 0.5
    expected = 0.3 * 0.1 + 0.4 * 0.2 + 0.2 * 0.35
    assert hypervolume(metric, params, ref_metric=0.5, ref_params=1.0) == pytest.approx(expected)


def test_hypervolume_ignores_points_outside_box():
    inside = hypervolume(np.array([0.8]), np.array([0.5]), ref_metric=0.5, ref_params=1.0)
    metric = np.array([0.8, 0.95, 0.4, np.nan])
    params = np.array([0.5, 1.5, 0.1, 0.2])  # too big; below the baseline; NaN
    assert inside == pytest.approx(0.5 * 0.3)
    assert hypervolume(metric, params, ref_metric=0.5, ref_params=1.0) == pytest.approx(inside)


def test_hypervolume_empty_is_zero():
    assert hypervolume(np.array([]), np.array([]), ref_metric=0.5, ref_params=1.0) == 0.0


def test_hypervolume_invariant_to_dominated_points():
    rng = np.random.default_rng(7)
    metric = rng.uniform(0.5, 0.9, 50)
    params = rng.uniform(0.0, 1.0, 50)
    front = pareto_mask(metric, params)
    full = hypervolume(metric, params, ref_metric=0.5, ref_params=1.0)
    only_front = hypervolume(metric[front], params[front], ref_metric=0.5, ref_params=1.0)
    assert front.sum() < 50
    assert full == pytest.approx(only_front)


# ----------------------------------------------------------------------------- report


def _trial(i: int, metric, params, *, status="TERMINATED", student="bilstm", **kw) -> TrialResult:
    return TrialResult(
        trial_id=f"t{i:02d}",
        status=status,
        method="vanilla",
        student=student,
        settings={"vanilla/temperature": 1.0 + i, "vanilla/alpha": 0.5, "vanilla/kd_loss": "kl",
                  "optim/lr": 1e-3 * (i + 1)},
        metric=metric,
        metrics={} if metric is None else {"accuracy": metric, "f1": metric - 0.01},
        student_params=params,
        student_params_non_embedding=None if params is None else params // 4,
        compression_ratio=None if params is None else 22_700_000 / params,
        latency_ms=0.5 + i / 10,
        epochs_done=2,
        **kw,
    )


@pytest.fixture
def teacher() -> TeacherSummary:
    return TeacherSummary(path="bert-base-sst2", params=22_700_000, metric=0.8968)


@pytest.fixture
def records() -> list[TrialResult]:
    return [
        _trial(0, 0.80, 1_000_000),
        _trial(1, 0.78, 2_000_000),  # dominated by t00
        _trial(2, 0.85, 4_000_000, student="transformer"),
        _trial(3, 0.84, 8_000_000, student="transformer"),  # dominated by t02
        _trial(4, 0.88, 16_000_000),
        _trial(5, None, 3_000_000, status="ERROR", error="NonFiniteLossError: loss is nan"),
        _trial(6, 0.99, 500_000, status="RUNNING"),  # would dominate, but is not finished
        _trial(7, None, None, status="PENDING"),
    ]


FRONT_IDS = ["t00", "t02", "t04"]


def test_trials_frame_columns_and_order(records):
    frame = trials_frame(records)
    assert len(frame) == len(records)
    assert list(frame.columns[:6]) == ["trial_id", "status", "method", "student", "metric_name",
                                       "metric"]
    assert {"dev_accuracy", "dev_f1", "setting/vanilla/temperature", "on_front"} <= set(frame)
    assert frame["trial_id"].tolist()[:2] == ["t06", "t00"]  # by student_params; unknown last
    assert frame["trial_id"].iloc[-1] == "t07"
    assert sorted(frame.loc[frame["on_front"], "trial_id"]) == FRONT_IDS


def test_trials_frame_keeps_integer_settings_with_gaps():
    frame = trials_frame([_trial(0, 0.8, 1_000), TrialResult(trial_id="x", status="PENDING")])
    frame_settings = [TrialResult(trial_id="a", status="RUNNING", settings={"optim/epochs": 2}),
                      TrialResult(trial_id="b", status="PENDING")]
    epochs = trials_frame(frame_settings)["setting/optim/epochs"]
    assert str(epochs.dtype) == "Int64" and epochs.iloc[0] == 2
    assert frame["setting/vanilla/temperature"].dtype == float


def test_pareto_frame_is_sorted_front(records):
    assert pareto_frame(records)["trial_id"].tolist() == FRONT_IDS


def test_write_report_end_to_end(records, teacher, tmp_path):
    report = write_report(records, tmp_path / "out", teacher=teacher, task_name="sst2",
                          metric_name="accuracy", ref_metric=0.5)
    trials = pd.read_csv(report.trials_csv)
    front = pd.read_csv(report.pareto_csv)
    assert len(trials) == len(records)
    assert front["trial_id"].tolist() == FRONT_IDS
    assert trials.loc[trials["trial_id"] == "t05", "error"].item().startswith("NonFinite")
    finished = trials[trials["status"] == "TERMINATED"]
    expected = pareto_mask(finished["metric"].to_numpy(), finished["student_params"].to_numpy())
    assert sorted(finished.loc[expected, "trial_id"]) == FRONT_IDS
    assert report.pareto_png.read_bytes()[:8] == PNG_MAGIC
    hv = hypervolume(front["metric"].to_numpy(), front["student_params"].to_numpy() / 22_700_000,
                     ref_metric=0.5, ref_params=1.0)
    assert report.hypervolume == pytest.approx(hv) and hv > 0


def test_write_report_without_teacher_uses_largest_student(records, tmp_path):
    report = write_report(records, tmp_path, teacher=None, task_name="sst2",
                          metric_name="accuracy", ref_metric=0.5, plot=False)
    front = report.front
    hv = hypervolume(front["metric"].to_numpy(), front["student_params"].to_numpy() / 16_000_000,
                     ref_metric=0.5, ref_params=1.0)
    assert report.pareto_png is None and not (tmp_path / "pareto.png").exists()
    assert report.hypervolume == pytest.approx(hv)


def test_write_report_with_no_finished_trial(records, teacher, tmp_path):
    unfinished = [r for r in records if r.status != "TERMINATED"]
    report = write_report(unfinished, tmp_path, teacher=teacher, task_name="sst2",
                          metric_name="accuracy")
    assert report.front.empty and report.hypervolume == 0.0
    assert len(pd.read_csv(report.trials_csv)) == len(unfinished)
    assert report.pareto_png.read_bytes()[:8] == PNG_MAGIC
    empty = write_report([], tmp_path / "empty", teacher=None, task_name="sst2",
                         metric_name="accuracy")
    assert empty.hypervolume == 0.0 and empty.pareto_png.read_bytes()[:8] == PNG_MAGIC
    assert "0 of 0" in markdown_front(empty, None, "accuracy")


def test_plot_front_without_teacher_metric(records, tmp_path):
    teacher = TeacherSummary(path="t", params=22_700_000)
    path = plot_front(records, tmp_path / "sub" / "p.png", teacher=teacher, task_name="sst2",
                      metric_name="accuracy")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_front_table_renders(records, teacher, tmp_path):
    from rich.console import Console

    report = write_report(records, tmp_path, teacher=teacher, task_name="sst2",
                          metric_name="accuracy", plot=False)
    console = Console(record=True, width=160)
    console.print(front_table(report, teacher, "accuracy"))
    text = console.export_text()
    for trial_id in FRONT_IDS:
        assert trial_id in text
    assert "0.8968" in text  # the teacher's value in the title
    assert "98.1%" in text  # t04: 0.88 / 0.8968
    assert "T=5 lr=5e-3 kl" not in text  # kd_loss is the same for all: not shown
    assert "T=5 lr=5e-3" in text  # t04's differing settings, abbreviated


def test_markdown_front_has_one_row_per_point(records, teacher, tmp_path):
    report = write_report(records, tmp_path, teacher=teacher, task_name="sst2",
                          metric_name="accuracy", plot=False)
    markdown = markdown_front(report, teacher, "accuracy")
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(FRONT_IDS)  # header, separator, rows
    assert all(trial_id in markdown for trial_id in FRONT_IDS)
    assert "t01" not in markdown


def test_import_is_light():
    code = (
        "import sys, raykd.report; "
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'matplotlib', 'rich') if m in sys.modules]; "
        "print(heavy); sys.exit(bool(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_plot_colours_by_method_when_the_sweep_compares_methods(records):
    from dataclasses import replace

    from matplotlib.figure import Figure

    from raykd.report.plot import _draw_trials
    from raykd.report.render import trials_frame

    def labels(recs):
        ax = Figure().add_subplot()
        frame = trials_frame(recs)
        _draw_trials(ax, frame[frame["status"] == "TERMINATED"])
        return [label for label in ax.get_legend_handles_labels()[1] if label != "Pareto front"]

    assert labels(records) == ["bilstm", "transformer"]  # one method: by student family
    mixed = [replace(r, method="zero_shot") if r.trial_id in ("t01", "t03") else r for r in records]
    assert labels(mixed) == ["vanilla / bilstm", "vanilla / transformer", "zero_shot / bilstm",
                             "zero_shot / transformer"]
