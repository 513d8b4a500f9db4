"""The ``raykd`` command line: help texts, version, option errors, and a light import.

Bad input exits with code 2 and one ``error: ...`` line on stderr. ``raykd --help`` must not import
torch, Ray or MLflow (checked in a fresh interpreter).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import raykd
from conftest import assert_input_error
from raykd.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TINY = REPO / "tests" / "spaces" / "sst2_tiny.yaml"
HEAVY = ("torch", "ray", "mlflow")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_error_line(result, *fragments: str) -> str:
    line = assert_input_error(result, [], fragments)
    assert result.stdout == ""
    return line


@pytest.fixture
def tiny_space(tmp_path) -> Path:
    raw = yaml.safe_load(TINY.read_text())
    raw["data"]["glue_dir"] = str(SHARED / "data" / "glue")
    raw["teacher"]["path"] = str(SHARED / "models" / "minilm-sst2")
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# --------------------------------------------------------------------------------------------
# help and version


HELP = {
    (): ("Usage: main", "sweep", "validate", "report", "teacher", "--version", "--help", "Typical use"),
    ("sweep",): ("--space FILE", "--set KEY=VALUE", "--num-samples", "--max-concurrent", "--storage DIR",
                 "./raykd_runs", "--address", "--mlflow-uri", "--num-cpus", "Ray does not start"),
    ("validate",): ("--space FILE", "--set KEY=VALUE", "Ray is not started", "--storage DIR", "--num-cpus", "--resume DIR", "trial plan"),
    ("report",): ("SWEEP_DIR", "--no-mlflow", "trials.csv"),
    ("teacher",): ("fine-tune",),
    ("teacher", "fine-tune"): ("--task", "--base PATH_OR_ID", "--out DIR", "--glue-dir DIR", "--epochs",
                               "--lr", "--batch-size", "--max-length", "--train-limit", "--seed", "sst2"),
}


@pytest.mark.parametrize("command", list(HELP), ids=lambda c: " ".join(c) or "raykd")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(command, flag):
    result = invoke(*command, flag)
    assert result.exit_code == 0, (result.stderr, result.exception)
    text = " ".join(result.stdout.split())  # help is wrapped to the terminal width
    for fragment in HELP[command]:
        assert fragment in text, f"{fragment!r} not in help of {' '.join(command) or 'raykd'}"
    assert result.stderr == ""


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"raykd, version {raykd.__version__}"
    assert raykd.__version__ == "0.1.0"


def test_no_command_shows_usage():
    result = invoke()
    assert result.exit_code in (0, 2)  # click 8.2+ exits 2 for a group invoked with no command
    assert "sweep" in result.output and "validate" in result.output


def test_unknown_command_is_a_usage_error():
    result = invoke("swep")
    assert result.exit_code == 2
    assert "No such command 'swep'" in result.stderr


def test_missing_space_option_is_a_usage_error():
    result = invoke("validate")
    assert result.exit_code == 2
    assert result.stderr == "error: give --space FILE to start a sweep, or --resume DIR to continue one\n"


# --------------------------------------------------------------------------------------------
# --set


@pytest.mark.parametrize("pair", ["foo", "=3"], ids=["no-equals", "no-key"])
@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_set_without_key_value(tmp_path, command, pair):
    extra = ["--storage", str(tmp_path / "runs")] if command == "sweep" else []
    result = invoke(command, "--space", str(TINY), "--set", pair, *extra)
    one_error_line(result, f"--set {pair}: write KEY=VALUE", "--set budget.num_samples=4")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not (SHARED / "models" / "minilm-sst2" / "config.json").is_file(), reason="needs shared data")
def test_set_values_are_yaml_and_validated(tiny_space):
    ok = invoke("validate", "--space", str(tiny_space), "--set", "budget.num_samples=5",
                "--set", "methods.vanilla.kd_loss=[kl]", "--set", "methods.vanilla.alpha=0.5")
    assert ok.exit_code == 0, (ok.stderr, ok.exception)
    assert "trial plan: 5 trials" in ok.stdout
    assert "fixed: kd_loss='kl', alpha=0.5" in ok.stdout
    one_error_line(invoke("validate", "--space", str(tiny_space), "--set", "budget.num_samples=0"),
                   "budget.num_samples must be an integer >= 1, got 0")
    one_error_line(invoke("validate", "--space", str(tiny_space), "--set", "methods.vanilla.temprature=2"),
                   "unknown key 'methods.vanilla.temprature'", "did you mean 'temperature'?")


def test_set_with_malformed_yaml_value(tmp_path):
    result = invoke("validate", "--space", str(TINY), "--set", "budget.num_samples=[1")
    one_error_line(result, "--set budget.num_samples=[1")


def test_missing_space_file(tmp_path):
    one_error_line(invoke("validate", "--space", str(tmp_path / "nope.yaml")),
                   f"search space {tmp_path / 'nope.yaml'} does not exist")


# --------------------------------------------------------------------------------------------
# report


def test_report_without_sweep_json(tmp_path):
    before = sorted(tmp_path.rglob("*"))
    result = invoke("report", str(tmp_path), "--no-mlflow")
    one_error_line(result, f"{tmp_path} is not a raykd sweep folder (no sweep.json)", "--storage")
    assert sorted(tmp_path.rglob("*")) == before


def test_report_on_a_missing_folder(tmp_path):
    one_error_line(invoke("report", str(tmp_path / "gone")), "is not a raykd sweep folder")
    assert not (tmp_path / "gone").exists()


def test_report_with_corrupt_sweep_json(tmp_path):
    (tmp_path / "sweep.json").write_text("{not json")
    one_error_line(invoke("report", str(tmp_path), "--no-mlflow"), "sweep.json")


# --------------------------------------------------------------------------------------------
# teacher fine-tune: bad task is an input error before anything is loaded


def test_fine_tune_unknown_task(tmp_path):
    result = invoke("teacher", "fine-tune", "--task", "sst3", "--base", str(tmp_path / "base"),
                    "--out", str(tmp_path / "out"))
    one_error_line(result, "unknown task 'sst3'", "valid GLUE tasks: cola, sst2")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# light imports (fresh interpreters)

_CHECK = "import json, sys; print(json.dumps({m: m in sys.modules for m in %r}))" % (HEAVY,)


def _modules_after(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{_CHECK}"], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_raykd_is_light():
    assert _modules_after("import raykd, raykd.cli, raykd.sweep") == dict.fromkeys(HEAVY, False)


def test_help_is_light():
    """``python -m raykd --help`` and every subcommand's help, in one interpreter."""
    code = """
import runpy, sys
for argv in (["--help"], ["sweep", "--help"], ["validate", "--help"], ["report", "--help"],
             ["teacher", "--help"], ["teacher", "fine-tune", "--help"], ["--version"]):
    sys.argv = ["raykd", *argv]
    try:
        runpy.run_module("raykd", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        assert exit.code in (0, None), (argv, exit.code)
"""
    assert _modules_after(code) == dict.fromkeys(HEAVY, False)


def test_python_dash_m_raykd_help():
    proc = subprocess.run([sys.executable, "-m", "raykd", "--help"], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "sweep" in proc.stdout
    assert proc.stderr == ""


# --------------------------------------------------------------------------------------------
# bundled spaces


def test_spaces_lists_every_bundled_space():
    result = invoke("spaces")
    assert result.exit_code == 0, result.output
    names = sorted(p.stem for p in (REPO / "search_spaces").glob("*.yaml"))
    assert names and all(f"{name} " in result.output for name in names)
    assert "sst2_low_data    task(s) sst2; methods supervised, vanilla, generation" in result.output
    assert "glue_local       task(s) sst2, cola, mrpc, rte, stsb; methods vanilla, multitask" in result.output
    assert "run one with: raykd sweep --space sst2_demo" in result.output


def test_a_bundled_space_runs_by_name_from_anywhere_with_set(tmp_path, monkeypatch):
    """From another folder the bundled space's relative paths miss; --set points them at the data."""
    monkeypatch.chdir(tmp_path)
    missing = invoke("validate", "--space", "sst2_demo")
    assert missing.exit_code == 2 and "teacher.path ../shared/models/minilm-sst2 does not exist" in missing.stderr
    result = invoke("validate", "--space", "sst2_demo.yaml", "--set", f"data.glue_dir={SHARED / 'data' / 'glue'}",
                    "--set", f"teacher.path={SHARED / 'models' / 'minilm-sst2'}", "--set", "budget.num_samples=3")
    assert result.exit_code == 0, result.stderr
    assert "space sst2-demo: OK" in result.output and "trial plan: 3 trials" in result.output
    unknown = invoke("validate", "--space", "sst2_dmo")
    assert unknown.exit_code == 2 and "bundled space (glue_all, glue_local, sst2_data_free, sst2_demo, sst2_low_data" in unknown.stderr
