"""Fast tests of the per-task fronts of a multi-task sweep (raykd.report.tasks)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from raykd.records import TrialResult
from raykd.report import (
    TaskInfo,
    markdown_task_fronts,
    pareto_frame,
    plot_task_fronts,
    task_fronts_table,
    write_task_fronts,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TEACHER = 66_955_010  # each task's own fine-tuned teacher

TASKS = [
    TaskInfo("sst2", "accuracy", teacher_metric=0.92, teacher_params=TEACHER, baseline=0.5),
    TaskInfo("cola", "matthews", teacher_metric=0.55, teacher_params=TEACHER, baseline=0.0),
    TaskInfo("stsb", "pearson", teacher_metric=0.87, teacher_params=TEACHER, baseline=0.0),
]


def _trial(trial_id, method, student, per_task, *, status="TERMINATED", total=None):
    """per_task: task -> (metric, params); the macro is their mean when every task is there."""
    metrics = {}
    for task, (metric, params) in per_task.items():
        metrics[f"{task}/metric"] = metric
        metrics[f"{task}/params"] = params
    values = [m for m, _ in per_task.values()]
    macro = sum(values) / len(values) if len(per_task) == len(TASKS) else None
    return TrialResult(
        trial_id=trial_id, status=status, method=method, student=student, metric=macro,
        metrics=metrics, metric_name="glue_macro",
        student_params=total if total is not None else sum(p for _, p in per_task.values()),
        settings={f"{method}/temperature": 2.0, "optim/lr": 1e-3},
    )


def _records() -> list[TrialResult]:
    return [
        # one shared 4M encoder plus a head per task: smaller per task, one student in all
        _trial("m0", "multitask", "transformer",
               {"sst2": (0.88, 4_001_538), "cola": (0.28, 4_001_538), "stsb": (0.68, 4_000_769)},
               total=4_003_845),
        _trial("v1", "vanilla", "bilstm",
               {"sst2": (0.85, 2_000_000), "cola": (0.20, 2_000_000), "stsb": (0.70, 2_000_000)}),
        _trial("v2", "vanilla", "transformer",
               {"sst2": (0.90, 11_000_000), "cola": (0.45, 11_000_000),
                "stsb": (0.84, 11_000_000)}),
        _trial("v3", "vanilla", "bilstm",
               {"sst2": (0.84, 5_000_000), "cola": (0.25, 5_000_000), "stsb": (0.74, 5_000_000)}),
        # no cola keys at all (so no macro either); NaN on stsb
        _trial("z0", "zero_shot", "bilstm",
               {"sst2": (0.80, 1_500_000), "stsb": (math.nan, 1_500_000)}),
        # failed, with numbers that would dominate every front
        _trial("e0", "vanilla", "bilstm",
               {"sst2": (0.99, 1_000_000), "cola": (0.90, 1_000_000), "stsb": (0.99, 1_000_000)},
               status="ERROR"),
        TrialResult(trial_id="p0", status="PENDING", method="vanilla", student="bilstm"),
    ]


# Worked out by hand from _records (params in M, metric):
#   sst2: z0 1.5/.80, v1 2/.85, m0 4.0/.88, v2 11/.90 on the front; v3 5/.84 loses to v1
#   cola: v1 2/.20, m0 4.0/.28, v2 11/.45; v3 5/.25 loses to m0; z0 has no cola
#   stsb: v1 2/.70, v3 5/.74, v2 11/.84; m0 4.0/.68 loses to v1; z0 is NaN
#   macro: m0 4.0/.6133, v2 33/.73; v1 6/.5833 and v3 15/.61 lose to m0
EXPECTED = {
    "sst2": ["z0", "v1", "m0", "v2"],
    "cola": ["v1", "m0", "v2"],
    "stsb": ["v1", "v3", "v2"],
}
MACRO_FRONT = ["m0", "v2"]


@pytest.fixture(scope="module")
def fronts(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return write_task_fronts(_records(), out, TASKS, teacher_params_total=3 * TEACHER)


def test_each_task_front_is_its_non_dominated_trials(fronts):
    for task, ids in EXPECTED.items():
        front = fronts.fronts[task]
        assert front["trial_id"].tolist() == ids, task
        assert front["params"].is_monotonic_increasing
        assert {"trial_id", "method", "student", "metric", "params", "compression_ratio",
                "setting/optim/lr"} <= set(front.columns)
    m0 = fronts.fronts["sst2"].set_index("trial_id").loc["m0"]
    assert m0["params"] == 4_001_538 and m0["metric"] == pytest.approx(0.88)
    assert m0["compression_ratio"] == pytest.approx(TEACHER / 4_001_538)
    assert m0["student_params"] == 4_003_845


def test_failed_pending_and_unmeasured_trials_are_left_out(fronts):
    for front in [*fronts.fronts.values(), fronts.macro_front]:
        assert not {"e0", "p0"} & set(front["trial_id"])
    assert "z0" not in set(fronts.fronts["cola"]["trial_id"])  # no cola keys
    assert "z0" not in set(fronts.fronts["stsb"]["trial_id"])  # NaN on stsb
    table = pd.read_csv(fronts.table_csv)
    assert table["trial_id"].tolist() == ["z0", "m0", "v1", "v3", "v2"]  # finished, by size
    assert list(table.columns) == ["trial_id", "method", "student", "student_params", "macro",
                                   "sst2", "sst2_params", "cola", "cola_params", "stsb",
                                   "stsb_params"]
    z0 = table.set_index("trial_id").loc["z0"]
    assert math.isnan(z0["cola"]) and math.isnan(z0["macro"]) and z0["sst2"] == 0.80


def test_macro_front_matches_pareto_csv(fronts):
    assert fronts.macro_front["trial_id"].tolist() == MACRO_FRONT
    assert pareto_frame(_records())["trial_id"].tolist() == MACRO_FRONT
    macro = pd.read_csv(fronts.macro_csv)
    assert macro["trial_id"].tolist() == MACRO_FRONT
    assert macro["metric"].tolist() == pytest.approx([(0.88 + 0.28 + 0.68) / 3,
                                                      (0.90 + 0.45 + 0.84) / 3])
    assert macro["cola"].tolist() == pytest.approx([0.28, 0.45])
    assert macro["sst2_params"].tolist() == [4_001_538, 11_000_000]
    assert fronts.teacher_macro == pytest.approx((0.92 + 0.55 + 0.87) / 3)  # the tasks' mean


def test_files_are_written(fronts):
    sweep_dir = fronts.table_csv.parent
    for task, ids in EXPECTED.items():
        assert fronts.csvs[task] == sweep_dir / "fronts" / f"{task}.csv"
        assert pd.read_csv(fronts.csvs[task])["trial_id"].tolist() == ids
    assert fronts.macro_csv == sweep_dir / "fronts" / "macro.csv"
    assert fronts.table_csv.name == "task_metrics.csv"
    assert fronts.figure == sweep_dir / "pareto_tasks.png"
    png = fronts.figure.read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 10_000


def test_hypervolume_by_hand(fronts):
    # sst2 staircase above 0.5 from each front point's size (fraction of the teacher) to 1.0
    sizes = [1_500_000, 2_000_000, 4_001_538, 11_000_000, TEACHER]
    heights = [0.80 - 0.5, 0.85 - 0.5, 0.88 - 0.5, 0.90 - 0.5]
    expected = sum((b - a) / TEACHER * h for a, b, h in zip(sizes, sizes[1:], heights))
    assert fronts.hypervolumes["sst2"] == pytest.approx(expected)
    assert all(hv > 0 for hv in fronts.hypervolumes.values())
    assert fronts.macro_hypervolume > 0


def test_hypervolume_grows_with_a_dominating_trial(fronts, tmp_path):
    better = _trial("v4", "vanilla", "bilstm",
                    {"sst2": (0.95, 1_000_000), "cola": (0.50, 1_000_000),
                     "stsb": (0.90, 1_000_000)})
    grown = write_task_fronts([*_records(), better], tmp_path / "grown", TASKS,
                              teacher_params_total=3 * TEACHER, plot=False)
    for task in EXPECTED:
        assert grown.hypervolumes[task] > fronts.hypervolumes[task]
        assert grown.fronts[task]["trial_id"].tolist() == ["v4"]  # it dominates all others
    assert grown.macro_hypervolume > fronts.macro_hypervolume
    assert grown.figure is None and not (tmp_path / "grown" / "pareto_tasks.png").exists()


def test_no_finished_trials(tmp_path):
    failed = [r for r in _records() if r.status != "TERMINATED"]
    for i, records in enumerate([[], failed]):
        out = write_task_fronts(records, tmp_path / str(i), TASKS)
        assert all(front.empty for front in out.fronts.values()) and out.macro_front.empty
        assert set(out.hypervolumes.values()) == {0.0} and out.macro_hypervolume == 0.0
        assert out.figure.read_bytes()[:8] == PNG_MAGIC
        assert pd.read_csv(out.csvs["sst2"]).empty and pd.read_csv(out.table_csv).empty
        assert "0 on the front" in markdown_task_fronts(out, TASKS)


def test_plot_with_a_task_nobody_measured(tmp_path):
    tasks = [*TASKS, TaskInfo("mnli", "accuracy", teacher_metric=None, teacher_params=None)]
    path = plot_task_fronts(_records(), tmp_path / "sub" / "tasks.png", tasks)
    assert path.read_bytes()[:8] == PNG_MAGIC
    single = plot_task_fronts(_records(), tmp_path / "one.png", TASKS[:1], teacher_macro=0.9)
    assert single.read_bytes()[:8] == PNG_MAGIC


def test_rich_table_mentions_every_task(fronts):
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(task_fronts_table(fronts, TASKS))
    text = console.export_text()
    for task in [*EXPECTED, "macro"]:
        assert task in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("│")}
    assert "4 of 5" in lines["sst2"]  # 4 on the front of the 5 finished trials measured on it
    assert "3 of 4" in lines["stsb"]  # z0's NaN does not count as measured
    assert "2 of 4" in lines["macro"]
    assert "0.9200" in text  # sst2's teacher


def test_markdown_has_a_table_per_task(fronts):
    markdown = markdown_task_fronts(fronts, TASKS)
    for task in TASKS:
        assert f"**{task.name} ({task.metric_name})**" in markdown
    assert "**macro" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    n_front = sum(len(ids) for ids in EXPECTED.values()) + len(MACRO_FRONT)
    assert len(rows) == n_front + len(TASKS) + 1  # plus a header per table
    assert f"{TEACHER / 4_001_538:.1f}x" in markdown  # m0's compression vs one task's teacher
    assert "e0" not in markdown


def test_bad_task_lists_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        write_task_fronts(_records(), tmp_path, [TASKS[0], TASKS[0]])
    with pytest.raises(ValueError, match="empty"):
        write_task_fronts(_records(), tmp_path, [])
