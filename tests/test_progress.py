"""The sweep's progress view, driven with stand-in trial objects (the attributes Tune's Trial has)."""

import pickle
from types import SimpleNamespace

from rich.console import Console

from raykd.sweep.progress import ProgressCallback


def _trial(trial_id, student, status="RUNNING", last=None, error_file=None):
    return SimpleNamespace(trial_id=trial_id, config={"method": "vanilla", "student": student}, status=status,
                           last_result=last or {}, error_file=error_file)


def _events(callback, tmp_path):
    a, b = _trial("a1", "bilstm"), _trial("b2", "transformer")
    trials = [a, b]
    callback.setup()
    callback.on_trial_start(0, trials, a)
    callback.on_trial_start(0, trials, b)
    callback.on_trial_result(0, trials, a, {"epoch": 1, "metric": 0.81, "best_metric": 0.81,
                                            "student_params": 2_040_000, "examples_per_s": 2300})
    a.last_result = {"best_metric": 0.86, "student_params": 2_040_000, "latency_ms": 0.7}
    callback.on_trial_complete(0, trials, a)
    a.status = "TERMINATED"
    (tmp_path / "error.txt").write_text("Traceback...\nraykd.errors.NonFiniteLossError: loss became inf\n")
    b.error_file = str(tmp_path / "error.txt")
    callback.on_trial_error(0, trials, b)
    b.status = "ERROR"
    callback.on_experiment_end(trials)


def test_log_lines_one_per_event(tmp_path):
    lines = []
    _events(ProgressCallback("accuracy", 2, echo=lines.append), tmp_path)
    assert len(lines) == 6  # 2 starts, 1 epoch, 1 finish, 1 failure, the summary
    assert "trial a1 vanilla  bilstm" in lines[2] and "running   epoch 1: accuracy 0.8100 (2300 ex/s)" in lines[2]
    assert "finished  best accuracy 0.8600 0.70 ms/example [1/2]" in lines[3]
    assert "FAILED" in lines[4] and "NonFiniteLossError: loss became inf [2/2]" in lines[4]
    assert lines[5].startswith("trials done in") and "1 finished, 1 failed; best accuracy 0.8600 (trial a1" in lines[5]


def test_live_table_has_one_row_per_trial(tmp_path):
    lines = []
    callback = ProgressCallback("accuracy", 2, echo=lines.append, live=True)
    callback._redraw = lambda: None  # no terminal in tests: check the table the view would draw
    _events(callback, tmp_path)
    console = Console(record=True, width=200)
    console.print(callback.table())
    text = console.export_text()
    assert "2/2 trials ended" in text
    rows = [line for line in text.splitlines() if " a1 " in line or " b2 " in line]
    assert len(rows) == 2
    assert "finished" in rows[0] and "0.8600" in rows[0] and "2.04" in rows[0]
    assert "FAILED" in rows[1] and "NonFiniteLossError" in rows[1]
    assert len(lines) == 1 and lines[0].startswith("trials done in")  # only the summary as a line


def test_the_view_pickles_for_resume():
    callback = ProgressCallback("accuracy", 2, live=True)
    callback._view = object()  # stands for a live display, which cannot be pickled
    again = pickle.loads(pickle.dumps(callback))
    assert again._view is None and again.total == 2
