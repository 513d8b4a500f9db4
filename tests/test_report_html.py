"""Fast tests of the interactive Pareto page (raykd/report/interactive.py): pareto.html, no Ray."""

from __future__ import annotations

import json
import re

import pytest

from raykd.records import TeacherSummary, TrialResult
from raykd.report import write_report
from raykd.report.interactive import DIV_ID, EMPTY_TEXT, FRONT_TRACE, write_front_html

FINISHED_IDS = ["t00", "t01", "t02", "t03", "t04"]
FRONT_IDS = ["t00", "t02", "t04"]


def _trial(i: int, metric, params, *, status="TERMINATED", student="bilstm", method="vanilla") -> TrialResult:
    return TrialResult(
        trial_id=f"t{i:02d}", status=status, method=method, student=student,
        settings={"vanilla/temperature": 2.3125 + i, "vanilla/kd_loss": "kl", "optim/lr": 1e-3 * (i + 1)},
        metric=metric, metrics={} if metric is None else {"accuracy": metric},
        student_params=params, compression_ratio=None if params is None else 22_700_000 / params, epochs_done=2,
    )


@pytest.fixture
def records() -> list[TrialResult]:
    return [
        _trial(0, 0.80, 1_000_000),
        _trial(1, 0.78, 2_000_000, method="zero_shot"),  # dominated by t00
        _trial(2, 0.85, 4_000_000, student="transformer"),
        _trial(3, 0.84, 8_000_000, student="transformer", method="zero_shot"),  # dominated by t02
        _trial(4, 0.88, 16_000_000),
        _trial(5, None, 3_000_000, status="ERROR"),
        _trial(6, 0.99, 500_000, status="RUNNING"),  # would dominate, but is not finished
        _trial(7, None, None, status="PENDING"),
    ]


@pytest.fixture
def teacher() -> TeacherSummary:
    return TeacherSummary(path="minilm-sst2", params=22_700_000, metric=0.8968)


def _figure(page: str) -> tuple[list[dict], dict]:
    """The ``data`` and ``layout`` that the page passes to ``Plotly.newPlot``."""
    start = page.index("Plotly.newPlot(")
    decoder, rest = json.JSONDecoder(), page[start + len("Plotly.newPlot("):]
    div, end = decoder.raw_decode(rest.lstrip())
    rest = rest.lstrip()[end:].lstrip().removeprefix(",").lstrip()
    data, end = decoder.raw_decode(rest)
    layout, _ = decoder.raw_decode(rest[end:].lstrip().removeprefix(",").lstrip())
    assert div == DIV_ID
    return data, layout


def _ids(trace: dict) -> list[str]:
    return [row[0] for row in trace.get("customdata", [])]


def test_page_is_offline_and_holds_every_finished_trial(records, teacher, tmp_path):
    path = write_front_html(records, tmp_path / "sub" / "pareto.html", teacher=teacher, task_name="sst2",
                            metric_name="accuracy")
    page = path.read_text()
    assert page.lstrip().lower().startswith("<!doctype html>") and path.stat().st_size > 1_000_000
    assert "plotly.js v" in page  # the library itself is inside the file
    assert not re.search(r"<script[^>]*\ssrc=", page)  # no script from a CDN or anywhere else
    data, layout = _figure(page)
    points = [t for t in data if t.get("name") not in (FRONT_TRACE, "teacher")]
    assert sorted(i for t in points for i in _ids(t)) == FINISHED_IDS  # one point per finished trial
    assert layout["xaxis"]["type"] == "log"
    assert "5 finished trials, 3 on the Pareto front; 1 failed" in layout["title"]["text"]


def test_front_points_are_ringed_and_joined(records, teacher, tmp_path):
    data, _ = _figure(write_front_html(records, tmp_path / "p.html", teacher=teacher, task_name="sst2",
                                       metric_name="accuracy").read_text())
    front = next(t for t in data if t["name"] == FRONT_TRACE)
    assert _ids(front) == FRONT_IDS  # fewest parameters first
    assert front["line"]["shape"] == "hv" and front["marker"]["symbol"] == "circle-open"
    assert front["x"] == pytest.approx([1.0, 4.0, 16.0])  # millions of parameters
    points = [t for t in data if t["name"] not in (FRONT_TRACE, "teacher")]
    assert {t["name"] for t in points} == {"vanilla / bilstm", "vanilla / transformer", "zero_shot / bilstm",
                                          "zero_shot / transformer"}
    colours = {t["name"]: t["marker"]["color"] for t in points}
    symbols = {t["name"]: t["marker"]["symbol"] for t in points}
    assert colours["vanilla / bilstm"] == colours["vanilla / transformer"] != colours["zero_shot / bilstm"]
    assert symbols["vanilla / bilstm"] == symbols["zero_shot / bilstm"] != symbols["vanilla / transformer"]


def test_hover_shows_trial_settings_and_size(records, teacher, tmp_path):
    data, _ = _figure(write_front_html(records, tmp_path / "p.html", teacher=teacher, task_name="sst2",
                                       metric_name="accuracy").read_text())
    trace = next(t for t in data if "t02" in _ids(t) and t["name"] != FRONT_TRACE)
    row = trace["customdata"][_ids(trace).index("t02")]
    assert row[:4] == ["t02", "vanilla", "transformer", "compression 5.7x"]
    assert "vanilla/temperature=4.31" in row[4] and "optim/lr=0.003" in row[4] and "vanilla/kd_loss=kl" in row[4]
    assert "on the Pareto front" in row[5]
    for field in ("%{customdata[0]}", "%{customdata[4]}", "accuracy: %{y:.4f}", "%{x:.3f}M"):
        assert field in trace["hovertemplate"]


def test_teacher_is_a_star_with_its_value(records, teacher, tmp_path):
    data, layout = _figure(write_front_html(records, tmp_path / "p.html", teacher=teacher, task_name="sst2",
                                            metric_name="accuracy").read_text())
    star = next(t for t in data if t["name"] == "teacher")
    assert star["marker"]["symbol"] == "star" and star["x"] == pytest.approx([22.7])
    assert star["y"] == [0.8968] and star["text"] == ["teacher 0.8968"]
    assert any(shape.get("y0") == 0.8968 for shape in layout["shapes"])  # its level across the plot
    unknown = TeacherSummary(path="minilm-sst2", params=22_700_000)
    data, layout = _figure(write_front_html(records, tmp_path / "q.html", teacher=unknown, task_name="sst2",
                                            metric_name="accuracy").read_text())
    assert not any(t["name"] == "teacher" for t in data)
    assert any(shape.get("x0") == pytest.approx(22.7) for shape in layout["shapes"])


def test_empty_sweep_still_writes_a_page(records, tmp_path):
    unfinished = [r for r in records if r.status != "TERMINATED"]
    for recs, name in ((unfinished, "some.html"), ([], "none.html")):
        page = write_front_html(recs, tmp_path / name, teacher=None, task_name="sst2",
                                metric_name="accuracy").read_text()
        data, layout = _figure(page)
        assert not any(_ids(t) for t in data)
        assert any(note["text"] == EMPTY_TEXT for note in layout["annotations"])
        assert "0 finished trials, 0 on the Pareto front" in layout["title"]["text"]


def test_write_report_writes_the_page_next_to_the_png(records, teacher, tmp_path):
    report = write_report(records, tmp_path, teacher=teacher, task_name="sst2", metric_name="accuracy")
    assert report.pareto_html == tmp_path / "pareto.html" and report.pareto_png.parent == tmp_path
    data, _ = _figure(report.pareto_html.read_text())
    assert _ids(next(t for t in data if t["name"] == FRONT_TRACE)) == report.front["trial_id"].tolist()
    skipped = write_report(records, tmp_path / "no-plot", teacher=teacher, task_name="sst2",
                           metric_name="accuracy", plot=False)
    assert skipped.pareto_html is None and not (tmp_path / "no-plot" / "pareto.html").exists()
