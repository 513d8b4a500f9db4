"""Ray tier, in a real browser: the MLflow UI shows a sweep's trials and its interactive front.

The shared 4-trial sweep (tests/conftest.py ``method_sweep``) is served by a real ``mlflow ui`` on
its SQLite store; headless Debian chromium, driven by Playwright, clicks through the UI as a user
does: the experiment's runs table ("Model training" view) with the parent run expanded into its
trial runs, then the parent run's ``pareto.html`` artifact, which the UI fetches from
``/get-artifact?path=pareto.html&run_uuid=<parent>`` and renders in a sandboxed iframe.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import http_healthy, wait_for

pytestmark = pytest.mark.ray

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip("no /usr/bin/chromium: install Debian's browser with `apt-get install -y chromium` "
                "(make setup does as root)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="no playwright: pip install -e '.[test]' (no "
                               "`playwright install` needed; the tests use /usr/bin/chromium)")

# Without the background-networking flags chromium keeps calling Google services on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sweep(method_sweep):
    """``(storage, sweep_dir, experiment id, parent run, trial runs)`` of the shared sweep, from MLflow."""
    from mlflow.tracking import MlflowClient

    storage, outcome, _, _ = method_sweep
    client = MlflowClient(f"sqlite:///{storage}/mlflow.db")
    experiment = client.get_experiment_by_name("raykd-methods-ray")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("raykd.kind") == "sweep")
    trials = [r for r in runs if r.data.tags.get("raykd.kind") == "trial"]
    assert len(trials) == 4 and all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials)
    return storage, outcome.sweep_dir, experiment.experiment_id, parent, trials


@pytest.fixture(scope="module")
def ui(sweep, tmp_path_factory):
    """The base URL of a real ``mlflow ui`` on the sweep's store; stopped (its process group) at the end.

    The experiment's artifact root is a ``file://`` folder (``<storage>/mlartifacts``), which the
    server reads directly: no artifact flags needed. One worker and no job runner keep it to two
    processes on a small machine.
    """
    storage = sweep[0]
    log = tmp_path_factory.mktemp("mlflow-ui") / "mlflow-ui.log"
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "ui", "--backend-store-uri", f"sqlite:///{Path(storage).resolve()}/mlflow.db",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as out:  # its own process group: the teardown stops the server and its workers
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_healthy(base), 60, "mlflow ui's /health", process=process, log=log)
        yield base
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A page of headless Debian chromium with a fresh profile; the browser is closed at the end."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1600, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            # MLflow 3 pops up feature tips ("Detect Issues ... Got it") over the page at any moment
            page.add_locator_handler(page.get_by_role("button", name="Got it"), lambda tip: tip.click())
            yield page
        finally:
            context.close()


def _open_model_training_view(page, experiment_url: str, shown, attempts: int = 3) -> None:
    """Open an experiment and switch its sidebar to "Model training", as a user does, until ``shown``
    (a locator of the runs table) is visible.

    MLflow 3.17 first routes ``#/experiments/<id>`` to the GenAI overview (``workflowType=genai``)
    once the experiment has loaded; a click that lands before that routing is undone by it (seen in
    CI). So the test waits for the app's own routing, then clicks, and clicks again if a late
    re-route (or a feature tip over the switch) swallowed the first click.
    """
    page.goto(experiment_url)
    page.wait_for_url("**workflowType=genai**")
    for attempt in range(attempts):
        page.get_by_text("Model training", exact=True).click()
        try:
            shown.wait_for(state="visible", timeout=10_000)
            return
        except sync_api.Error:
            if attempt == attempts - 1:
                raise


def test_runs_table_shows_the_trials_under_the_parent_run(sweep, ui, page):
    _, _, experiment_id, parent, trials = sweep
    expect = sync_api.expect
    parent_link = page.locator(f'a[href$="/runs/{parent.info.run_id}"]')
    _open_model_training_view(page, f"{ui}/#/experiments/{experiment_id}", parent_link)
    expect(parent_link).to_have_text(parent.info.run_name)
    assert "workflowType=machine_learning" in page.url and f"/experiments/{experiment_id}/runs" in page.url
    names = sorted(r.info.run_name for r in trials)
    # <method>-<student>-<size>-<trial id>
    assert names == sorted(f"{r.data.params['method']}-{r.data.params['student']}-"
                           f"{r.data.metrics['student_params'] / 1e6:.2f}M-{r.data.tags['raykd.trial_id']}"
                           for r in trials)
    for name in names:  # nested: hidden until the parent row is expanded
        expect(page.get_by_text(name, exact=True)).to_have_count(0)
    page.locator("[role=gridcell]", has=parent_link).get_by_role("button").first.click()  # the [+] by its name
    for name in names:
        expect(page.get_by_text(name, exact=True)).to_be_visible()
    expect(page.get_by_text(f"{1 + len(trials)} matching runs")).to_be_visible()


def test_run_artifact_view_renders_the_interactive_front(sweep, ui, page):
    _, sweep_dir, experiment_id, parent, trials = sweep
    front_ids = sorted(pd.read_csv(sweep_dir / "pareto.csv", dtype={"trial_id": str}).query("on_front")["trial_id"])
    finished = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str}).query("status == 'TERMINATED'")
    assert front_ids and len(finished) == len(trials)
    run_id = parent.info.run_id
    with page.expect_response(lambda r: "/get-artifact?" in r.url and "path=pareto.html" in r.url) as fetched:
        page.goto(f"{ui}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/pareto.html")
    assert fetched.value.ok and f"run_uuid={run_id}" in fetched.value.url
    iframe = page.locator("iframe.mlflow-html-iframe")
    plot = iframe.content_frame.locator("#pareto-front")
    plot.locator(".scatterlayer .trace .point").first.wait_for()
    frame = iframe.element_handle().content_frame()
    traces = frame.evaluate("""() => {
        const gd = document.getElementById('pareto-front');
        const drawn = [...gd.querySelectorAll('.scatterlayer .trace')];
        return gd.data.map((t, i) => ({name: t.name, ids: (t.customdata || []).map(row => row[0]),
                                       points: drawn[i].querySelectorAll('.point').length}));
    }""")
    front = next(t for t in traces if t["name"] == "Pareto front")
    trial_traces = [t for t in traces if t["name"] not in ("Pareto front", "teacher")]
    assert sorted(front["ids"]) == front_ids and front["points"] == len(front_ids)
    assert sorted(i for t in trial_traces for i in t["ids"]) == sorted(finished["trial_id"])
    assert sum(t["points"] for t in trial_traces) >= len(finished)
    assert any(t["name"] == "teacher" and t["points"] == 1 for t in traces)
    plot.locator(".scatterlayer .trace .point").first.hover(force=True)  # plotly's drag layer takes the events
    sync_api.expect(plot.locator(".hoverlayer")).to_contain_text("trial ")
