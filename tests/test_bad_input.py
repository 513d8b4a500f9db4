"""Bad input through the real command line: one line on stderr, exit code 2, nothing written, no Ray.

Each test writes a search space with absolute paths into ``tmp_path``, runs
``raykd sweep --space FILE --storage <tmp_path>/runs`` through click's test runner and checks that

* the exit code is 2,
* stderr is exactly one line, ``error: ...``, naming the problem and how to fix it,
* no write happened under ``tmp_path`` or the repository while the command ran (the audit-hook
  harness :class:`conftest.WriteWatch` records every file write, so an input error raised after
  a write fails the test with the stack that wrote), and the storage folder was not created.

If a case ever passed the input checks, :func:`_stop_after_checks` fails it at once instead of
letting the sweep go on to MLflow and Ray. One case also runs in a fresh interpreter to show that
Ray was never imported.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from raykd.cli import main

from conftest import (GLUE, REPO, TEACHER, assert_input_error, invoke_cli, stop_after_checks,  # noqa: E402
                      teacher_copy, tiny_space_raw)

TINY = REPO / "tests" / "spaces" / "sst2_tiny.yaml"

pytestmark = pytest.mark.skipif(
    not (GLUE / "SST-2" / "train.tsv").is_file() or not (TEACHER / "config.json").is_file(),
    reason="needs the shared SST-2 data and the minilm-sst2 teacher",
)


# --------------------------------------------------------------------------------------------
# helpers


def tiny_raw() -> dict:
    """The tiny SST-2 space with absolute data and teacher paths."""
    return tiny_space_raw()


def write_space(tmp_path: Path, raw: dict, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def edited(**changes) -> dict:
    """``tiny_raw()`` with dotted-key changes (``methods__vanilla__alpha=1.5``); ``...`` deletes."""
    raw = copy.deepcopy(tiny_raw())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        if value is ...:
            del node[leaf]
        else:
            node[leaf] = value
    return raw


def tree(root: Path) -> list[str]:
    """Every path under ``root`` with size and modification time: changes if anything is written."""
    return sorted(f"{p.relative_to(root)} {p.stat().st_size if p.is_file() else '-'} {p.stat().st_mtime_ns}"
                  for p in root.rglob("*"))


@pytest.fixture(autouse=True)
def _stop_after_checks(monkeypatch):
    """Fail at once if a bad space ever gets past the pre-sweep checks (rather than starting a sweep)."""
    stop_after_checks(monkeypatch)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def sweep_fails(tmp_path: Path, space_file: Path, fragments: tuple[str, ...], *extra: str) -> str:
    """Run ``raykd sweep`` on a bad space and check the contract; return the error line."""
    storage = tmp_path / "runs"
    before = tree(tmp_path)
    result, writes = invoke_cli(["sweep", "--space", str(space_file), "--storage", str(storage), *extra],
                                [tmp_path, REPO])
    line = assert_input_error(result, writes, fragments)
    assert result.stdout == ""
    assert not storage.exists(), "the storage folder was created"
    assert tree(tmp_path) == before, "something was written"
    return line


# --------------------------------------------------------------------------------------------
# 1. malformed YAML


def test_malformed_yaml_names_the_line(tmp_path):
    text = TINY.read_text().replace("kd_loss: [kl, mse]", "kd_loss: [kl, mse}")
    lines = text.splitlines()
    bad_line = next(i for i, line in enumerate(lines, 1) if "[kl, mse}" in line)
    space = tmp_path / "space.yaml"
    space.write_text(text)
    line = sweep_fails(tmp_path, space, ("malformed YAML", f"line {bad_line}", "fix the syntax"))
    assert str(space) in line


# --------------------------------------------------------------------------------------------
# 2. unknown keys: top level and nested, with the right key suggested


@pytest.mark.parametrize(
    "where, typo, right",
    [
        ("", "trainig", "training"),
        ("data", "glue_dri", "glue_dir"),
        ("methods.vanilla", "temprature", "temperature"),
        ("students.bilstm", "hiden_dim", "hidden_dim"),
    ],
    ids=["top-level", "data", "method", "student"],
)
def test_unknown_key_suggests_the_right_one(tmp_path, where, typo, right):
    raw = tiny_raw()
    node = raw
    for key in where.split(".") if where else ():
        node = node[key]
    node[typo] = node.pop(right)
    dotted = f"{where}.{typo}" if where else typo
    sweep_fails(tmp_path, write_space(tmp_path, raw), (f"unknown key '{dotted}'", f"did you mean '{right}'?"))


# --------------------------------------------------------------------------------------------
# 3. unknown method / student: the valid names are listed


@pytest.mark.parametrize(
    "section, typo, right, listing",
    [
        ("methods", "vanila", "vanilla", "valid methods: vanilla"),
        ("students", "bilsm", "bilstm", "valid students: bilstm, transformer"),
    ],
    ids=["method", "student"],
)
def test_unknown_component_lists_valid_names(tmp_path, section, typo, right, listing):
    raw = tiny_raw()
    raw[section][typo] = raw[section].pop(right)
    sweep_fails(tmp_path, write_space(tmp_path, raw), (f"unknown {section[:-1]} '{typo}'", listing))


# --------------------------------------------------------------------------------------------
# 4. missing data folder / file


def _glue_without_train(tmp_path: Path) -> Path:
    glue = tmp_path / "glue"
    (glue / "SST-2").mkdir(parents=True)
    (glue / "SST-2" / "dev.tsv").symlink_to(GLUE / "SST-2" / "dev.tsv")
    return glue


@pytest.mark.parametrize("case", ["missing-folder", "missing-file"])
def test_missing_data(tmp_path, case):
    if case == "missing-folder":
        glue = tmp_path / "no_such_glue"
        fragments = ("data.glue_dir", str(glue), "does not exist", "glue_data folder")
    else:
        glue = _glue_without_train(tmp_path)
        fragments = ("missing file", str(glue / "SST-2" / "train.tsv"), "<glue_dir>/SST-2/train.tsv")
    sweep_fails(tmp_path, write_space(tmp_path, edited(data__glue_dir=str(glue))), fragments)


# --------------------------------------------------------------------------------------------
# 5. custom task: missing text / label column


def _sst2_rows(n: int = 20) -> list[tuple[str, str]]:
    lines = (GLUE / "SST-2" / "dev.tsv").read_text().splitlines()[1 : n + 1]
    names = {"0": "negative", "1": "positive"}
    return [(text, names[label]) for text, label in (line.split("\t") for line in lines)]


@pytest.mark.parametrize(
    "header, missing",
    [(("sentence", "label"), "text"), (("text", "sentiment"), "label")],
    ids=["text-column", "label-column"],
)
def test_missing_column(tmp_path, header, missing):
    import pandas as pd

    frame = pd.DataFrame(_sst2_rows(), columns=list(header))
    for split in ("train", "dev"):
        frame.to_csv(tmp_path / f"{split}.csv", index=False)
    raw = edited(task="reviews")
    raw["data"] = {"train": str(tmp_path / "train.csv"), "dev": str(tmp_path / "dev.csv"),
                   "text_columns": ["text"], "label_column": "label", "labels": ["negative", "positive"],
                   "max_length": 64}
    sweep_fails(tmp_path, write_space(tmp_path, raw),
                (f"column '{missing}' not found", str(tmp_path / "train.csv"),
                 f"columns: {', '.join(header)}", "data.text_columns / data.label_column"))


# --------------------------------------------------------------------------------------------
# 6. teacher labels that do not match the task


def _fake_teacher(tmp_path: Path, id2label: dict) -> Path:
    """The real teacher's files with another ``id2label`` (and ``num_labels``) in its config."""
    return teacher_copy(tmp_path / "teacher", config={"id2label": id2label, "num_labels": len(id2label),
                                                      "label2id": {name: int(i) for i, name in id2label.items()}})


@pytest.mark.parametrize(
    "id2label, fragments",
    [
        ({"0": "negative", "1": "neutral", "2": "positive"}, ("has 3 labels", "task sst2 needs 2 labels")),
        ({"0": "positive", "1": "negative"},
         ("labels ['positive', 'negative'] do not match task sst2 labels ['negative', 'positive']",)),
    ],
    ids=["label-count", "label-names"],
)
def test_teacher_labels_do_not_match(tmp_path, id2label, fragments):
    folder = _fake_teacher(tmp_path, id2label)
    sweep_fails(tmp_path, write_space(tmp_path, edited(teacher__path=str(folder))),
                (*fragments, "raykd teacher fine-tune", "id2label"))


# --------------------------------------------------------------------------------------------
# 7. temperature <= 0


@pytest.mark.parametrize(
    "value, fragment",
    [(0, "methods.vanilla.temperature must be > 0"),
     ({"low": -1, "high": 4}, "methods.vanilla.temperature.low must be > 0")],
    ids=["fixed-zero", "range-low-negative"],
)
def test_temperature_not_positive(tmp_path, value, fragment):
    sweep_fails(tmp_path, write_space(tmp_path, edited(methods__vanilla__temperature=value)), (fragment,))


# --------------------------------------------------------------------------------------------
# 8. alpha outside [0, 1]


@pytest.mark.parametrize(
    "value, fragment",
    [(1.5, "methods.vanilla.alpha must be <= 1"), ([0.5, -0.1], "methods.vanilla.alpha[1] must be >= 0")],
    ids=["fixed", "choice"],
)
def test_alpha_outside_unit_interval(tmp_path, value, fragment):
    sweep_fails(tmp_path, write_space(tmp_path, edited(methods__vanilla__alpha=value)), (fragment,))


# --------------------------------------------------------------------------------------------
# 9. empty choice list


def test_empty_choice_list(tmp_path):
    sweep_fails(tmp_path, write_space(tmp_path, edited(methods__vanilla__kd_loss=[])),
                ("methods.vanilla.kd_loss: empty choice list", "give at least one value"))


# --------------------------------------------------------------------------------------------
# 10. teacher path that is not a model folder


def test_teacher_not_a_model_folder(tmp_path):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    sweep_fails(tmp_path, write_space(tmp_path, edited(teacher__path=str(folder))),
                (f"teacher.path {folder} is not a Hugging Face model folder", "no config.json", "save_pretrained"))


# --------------------------------------------------------------------------------------------
# validate: same line, and the valid space passes


@pytest.mark.parametrize("case", ["unknown-method", "teacher-not-a-folder", "label-names"])
def test_validate_gives_the_same_line_as_sweep(tmp_path, case):
    if case == "unknown-method":
        raw = tiny_raw()
        raw["methods"]["vanila"] = raw["methods"].pop("vanilla")
    elif case == "teacher-not-a-folder":
        (tmp_path / "empty").mkdir()
        raw = edited(teacher__path=str(tmp_path / "empty"))
    else:
        raw = edited(teacher__path=str(_fake_teacher(tmp_path, {"0": "positive", "1": "negative"})))
    space = write_space(tmp_path, raw)
    line = sweep_fails(tmp_path, space, ("error: ",))
    before = tree(tmp_path)
    result = invoke("validate", "--space", str(space))
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""
    assert tree(tmp_path) == before


def test_validate_accepts_the_tiny_space_and_prints_the_plan(tmp_path):
    space = write_space(tmp_path, tiny_raw())
    before = tree(tmp_path)
    result = invoke("validate", "--space", str(space))
    assert result.exit_code == 0, (result.stderr, result.exception)
    out = result.stdout
    assert "space sst2-tiny: OK" in out
    assert "trial plan: 2 trials" in out
    assert "train 2,000, dev 872 examples" in out
    assert "teacher " + str(TEACHER.resolve()) in out
    assert tree(tmp_path) == before



def test_validate_accepts_a_teacher_initialised_transformer(tmp_path):
    space = write_space(tmp_path, edited(students__transformer={"init": ["random", "teacher_skip"],
                                                                 "num_layers": [1, 3]}))
    result = invoke("validate", "--space", str(space))
    assert result.exit_code == 0, result.stderr
    assert "trial plan" in result.stdout


def test_teacher_init_beyond_the_teachers_layers(tmp_path):
    space = write_space(tmp_path, edited(students__transformer={"init": "teacher_skip", "num_layers": 8}))
    sweep_fails(tmp_path, space, ("num_layers 8 exceeds the teacher's 6 layers", "num_layers <= 6 or init random"))


def test_validate_resolves_relative_paths_against_the_cwd(monkeypatch):
    """The checked-in tiny space uses ../shared/...: it validates from the repository root."""
    monkeypatch.chdir(REPO)
    result = invoke("validate", "--space", "tests/spaces/sst2_tiny.yaml")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "trial plan" in result.stdout


# --------------------------------------------------------------------------------------------
# Ray is never imported when the inputs are bad

_NO_RAY = """
import json, sys
from raykd.cli import main
try:
    main(["sweep", "--space", sys.argv[1], "--storage", sys.argv[2]], standalone_mode=False)
    code = 0
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "ray": "ray" in sys.modules}))
"""


def test_bad_teacher_labels_never_import_ray(tmp_path):
    """The label check runs late (after the data and teacher are read) and still before Ray."""
    folder = _fake_teacher(tmp_path, {"0": "positive", "1": "negative"})
    space = write_space(tmp_path, edited(teacher__path=str(folder)))
    storage = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", _NO_RAY, str(space), str(storage)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"code": 2, "ray": False}
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == proc.stderr.splitlines()
    assert "do not match task sst2" in proc.stderr
    assert not storage.exists()


# --------------------------------------------------------------------------------------------
# low-data and generation settings that cannot work


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"data.train_size": 1.5}, ("data.train_size", "fraction must lie in (0, 1)")),
        ({"data.train_size": 100000}, ("data.train_size 100000 per class", "has only", "lower train_size")),
        ({"methods": {"generation": {"gen_pretrain_ood": True}}}, ("gen_pretrain_ood", "set data.ood")),
        ({"methods": {"vanilla": {"augment": "eda"}}}, ("methods.vanilla.augment", "not one of none, tang")),
    ],
    ids=["fraction", "per-class", "pretrain-without-ood", "unknown-augment"],
)
def test_impossible_low_data_settings(tmp_path, change, fragments):
    raw = edited()
    for dotted, value in change.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    raw["data"].pop("train_limit", None)
    sweep_fails(tmp_path, write_space(tmp_path, raw), fragments)
