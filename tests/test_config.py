"""Search-space parsing (YAML -> SweepConfig) and the input checks that run before Ray.

Fast: no Ray, no training. Uses the shared SST-2 data and the minilm-sst2 teacher's config.json
for the :func:`raykd.checks.check_inputs` tests.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from raykd.config import TRAINING_PARAMS, BudgetConfig, ResourcesConfig, SweepConfig, load_space, parse_space
from raykd.domains import Choice, Fixed, Range
from raykd.errors import RaykdInputError
from raykd.methods import vanilla
from raykd.students import bilstm, transformer

from conftest import GLUE, REPO, TEACHER, teacher_copy, tiny_space_raw  # noqa: E402

TINY = REPO / "tests" / "spaces" / "sst2_tiny.yaml"

needs_shared = pytest.mark.skipif(
    not (GLUE / "SST-2" / "train.tsv").is_file() or not (TEACHER / "config.json").is_file(),
    reason="needs the shared SST-2 data and the minilm-sst2 teacher",
)


def tiny_raw() -> dict:
    """The tiny SST-2 space with absolute data and teacher paths."""
    return tiny_space_raw()


def minimal(**sections) -> dict:
    """The smallest valid space, with sections replaced or added."""
    raw = {"task": "sst2", "data": {"glue_dir": str(GLUE)}, "teacher": {"path": str(TEACHER)},
           "methods": {"vanilla": {}}, "students": {"bilstm": {}}}
    raw.update(copy.deepcopy(sections))
    return raw


def write(tmp_path: Path, raw: dict, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def refused(raw: dict, *fragments: str) -> str:
    with pytest.raises(RaykdInputError) as err:
        parse_space(raw)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --------------------------------------------------------------------------------------------
# the three domain forms


def test_scalar_list_and_range_forms():
    space = parse_space(minimal(
        methods={"vanilla": {"kd_loss": ["kl", "mse"], "temperature": {"low": 1, "high": 8, "log": True},
                             "alpha": 0.25}},
        students={"bilstm": {"hidden_dim": {"low": 32, "high": 128, "step": 32}, "embedding_dim": 64,
                             "dropout": [0.1, 0.3]}},
        training={"lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True}, "epochs": 3, "batch_size": [16, 32]},
    ))
    v, b, t = space.methods["vanilla"], space.students["bilstm"], space.training
    assert v["kd_loss"] == Choice(("kl", "mse"))
    assert v["alpha"] == Fixed(0.25)
    assert v["temperature"] == Range(1.0, 8.0, log=True, step=None, is_int=False)
    assert type(v["temperature"].low) is float and type(v["temperature"].high) is float
    assert b["hidden_dim"] == Range(32, 128, log=False, step=32, is_int=True)
    assert type(b["hidden_dim"].low) is int and type(b["hidden_dim"].high) is int
    assert b["embedding_dim"] == Fixed(64) and type(b["embedding_dim"].value) is int
    assert b["dropout"] == Choice((0.1, 0.3))
    assert t["lr"] == Range(1.0e-4, 3.0e-3, log=True, is_int=False)
    assert t["epochs"] == Fixed(3)
    assert t["batch_size"] == Choice((16, 32))


def test_values_take_the_settings_type():
    space = parse_space(minimal(
        methods={"vanilla": {"temperature": 2, "alpha": [0, 1]}},
        training={"epochs": {"low": 1.0, "high": 3}, "batch_size": 32.0},
    ))
    assert space.methods["vanilla"]["temperature"] == Fixed(2.0)
    assert type(space.methods["vanilla"]["temperature"].value) is float
    assert space.methods["vanilla"]["alpha"] == Choice((0.0, 1.0))
    assert all(type(a) is float for a in space.methods["vanilla"]["alpha"].values)
    # an int setting gives an int range; integral floats are accepted for it
    assert space.training["epochs"] == Range(1, 3, is_int=True)
    assert space.training["batch_size"] == Fixed(32) and type(space.training["batch_size"].value) is int
    # a float setting stays a float range even with integer bounds
    float_range = parse_space(minimal(methods={"vanilla": {"temperature": {"low": 1, "high": 4}}}))
    assert float_range.methods["vanilla"]["temperature"] == Range(1.0, 4.0, is_int=False)


def test_a_list_of_one_value_is_fixed():
    space = parse_space(minimal(methods={"vanilla": {"kd_loss": ["mse"], "alpha": [0.5, 0.5]}},
                                students={"bilstm": {"hidden_dim": [64]}}))
    assert space.methods["vanilla"]["kd_loss"] == Fixed("mse")
    assert space.methods["vanilla"]["alpha"] == Fixed(0.5)
    assert space.students["bilstm"]["hidden_dim"] == Fixed(64)


@pytest.mark.parametrize(
    "value, fragments",
    [
        ({"low": 0, "high": 1e-3, "log": True}, ("training.lr",)),  # lr itself must be > 0
        ({"low": 4, "high": 1}, ("low (4.0) must be smaller than high (1.0)",)),
        ({"low": 1e-3, "high": 1e-3}, ("must be smaller than high",)),
        ({"low": 1e-4}, ("needs both 'low' and 'high'",)),
        ({"low": 1e-4, "high": 1e-3, "log": True, "step": 1e-4}, ("either 'log' or 'step'",)),
        ({"low": 1e-4, "hihg": 1e-3}, ("unknown key 'training.lr.hihg'", "did you mean 'high'?")),
        ("fast", ("training.lr: expected float, got 'fast'",)),
        (True, ("expected float, got true",)),
    ],
    ids=["log-low-zero", "low-above-high", "low-equals-high", "no-high", "log-and-step", "range-typo",
         "string", "bool"],
)
def test_bad_ranges_are_refused(value, fragments):
    refused(minimal(training={"lr": value}), *fragments)


def test_log_range_needs_positive_low():
    # weight_decay may be 0, so only the log rule can refuse low = 0
    refused(minimal(training={"weight_decay": {"low": 0.0, "high": 0.1, "log": True}}),
            "training.weight_decay: a log range needs low > 0, got 0.0")
    space = parse_space(minimal(training={"weight_decay": {"low": 0.0, "high": 0.1}}))
    assert space.training["weight_decay"] == Range(0.0, 0.1)


def test_range_on_a_categorical_setting_is_refused():
    refused(minimal(methods={"vanilla": {"kd_loss": {"low": 0, "high": 1}}}),
            "methods.vanilla.kd_loss: a str setting takes a list of choices, not a range")
    refused(minimal(students={"bilstm": {"freeze_embeddings": {"low": 0, "high": 1}}}), "takes a list of choices")


def test_choice_values_are_checked_one_by_one():
    refused(minimal(methods={"vanilla": {"kd_loss": ["kl", "cosine"]}}),
            "methods.vanilla.kd_loss[1]: 'cosine' is not one of kl, mse")
    refused(minimal(students={"bilstm": {"dropout": [0.1, 1.0]}}), "students.bilstm.dropout[1] must be < 1.0")


# --------------------------------------------------------------------------------------------
# defaults, shorthands, sections


def test_defaults_fill_omitted_settings():
    space = parse_space(minimal(), default_name="from-file")
    assert space.name == "from-file"
    assert space.methods["vanilla"] == {name: Fixed(spec.default) for name, spec in vanilla.PARAMS.items()}
    assert space.students["bilstm"] == {name: Fixed(spec.default) for name, spec in bilstm.PARAMS.items()}
    assert space.training == {name: Fixed(spec.default) for name, spec in TRAINING_PARAMS.items()}
    assert space.budget == BudgetConfig()
    assert space.resources == ResourcesConfig()
    assert space.seed == 0
    assert space.data.max_length == 128 and space.data.source == "glue"
    assert space.teacher.batch_size == 128


def test_null_sections_take_defaults():
    space = parse_space(minimal(methods={"vanilla": None}, training=None, budget=None, resources=None))
    assert space.methods["vanilla"]["temperature"] == Fixed(2.0)
    assert space.budget.num_samples == 8


def test_plain_list_of_names():
    space = parse_space(minimal(methods=["vanilla"], students=["bilstm", "transformer"]))
    assert list(space.methods) == ["vanilla"]
    assert list(space.students) == ["bilstm", "transformer"]
    assert space.students["transformer"]["init"] == Fixed("random")


def test_the_tiny_space_parses(tmp_path):
    space = load_space(write(tmp_path, tiny_raw(), "whatever.yaml"))
    assert isinstance(space, SweepConfig)
    assert space.name == "sst2-tiny"  # the file's name: wins over the file name
    assert space.task == "sst2"
    assert space.data.train_limit == 2000 and space.data.max_length == 64
    assert space.methods["vanilla"]["temperature"] == Range(1.0, 4.0)
    assert space.students["bilstm"]["hidden_dim"] == Choice((32, 64))
    assert space.budget == BudgetConfig(num_samples=2, max_concurrent=2)
    assert space.resources.cpus_per_worker == 1.0 and not space.resources.use_gpu
    assert space.source == (tmp_path / "whatever.yaml").read_text()


def test_name_defaults_to_the_file_stem(tmp_path):
    raw = tiny_raw()
    del raw["name"]
    assert load_space(write(tmp_path, raw, "my-sweep.yaml")).name == "my-sweep"


@pytest.mark.parametrize("missing", ["task", "data", "teacher", "methods", "students"])
def test_missing_required_section(missing):
    raw = minimal()
    del raw[missing]
    refused(raw, f"search space has no '{missing}' section")


@pytest.mark.parametrize(
    "sections, fragments",
    [
        ({"teacher": {}}, ("teacher: missing required key(s) path", "or base (a pretrained encoder) with fine_tune")),
        ({"teacher": {"base": "x"}}, ("teacher.base is given without fine_tune: true",)),
        ({"teacher": "/some/path"}, ("teacher must be a mapping",)),
        ({"methods": {}}, ("methods: give at least one method", "vanilla")),
        ({"students": []}, ("students: give at least one student", "bilstm")),
        ({"methods": "vanilla"}, ("methods: give at least one method",)),
        ({"training": [1, 2]}, ("training must be a mapping of settings",)),
    ],
    ids=["teacher-no-path", "teacher-base-only", "teacher-not-mapping", "no-methods", "no-students", "methods-string", "training-list"],
)
def test_malformed_sections(sections, fragments):
    refused(minimal(**sections), *fragments)


def test_unknown_keys_everywhere():
    refused(minimal(seeed=1), "unknown key 'seeed'", "did you mean 'seed'?")
    refused(minimal(budget={"num_sample": 3}), "unknown key 'budget.num_sample'", "did you mean 'num_samples'?")
    refused(minimal(resources={"cpus": 1}), "unknown key 'resources.cpus'")
    refused(minimal(teacher={"path": "x", "bath_size": 3}), "did you mean 'batch_size'?")
    refused(minimal(students={"transformer": {"num_layer": 2}}), "did you mean 'num_layers'?")


def test_unknown_names_list_valid_ones():
    refused(minimal(methods=["vanilla", "fitnet"]), "methods: unknown method 'fitnet'", "valid methods: vanilla")
    refused(minimal(students={"cnn": {}}), "students: unknown student 'cnn'", "valid students: bilstm, transformer")


# --------------------------------------------------------------------------------------------
# budget / resources / data scalars


@pytest.mark.parametrize(
    "sections, fragments",
    [
        ({"budget": {"num_samples": 0}}, ("budget.num_samples must be an integer >= 1, got 0",)),
        ({"budget": {"num_samples": 2.5}}, ("budget.num_samples must be an integer >= 1, got 2.5",)),
        ({"budget": {"num_samples": True}}, ("budget.num_samples must be an integer",)),
        ({"budget": {"max_concurrent": 0}}, ("budget.max_concurrent must be an integer >= 1",)),
        ({"budget": {"time_budget_s": -1}}, ("budget.time_budget_s must be a number > 0",)),
        ({"budget": {"num_samples": [2, 4]}}, ("budget.num_samples must be an integer",)),
        ({"resources": {"cpus_per_worker": -1}}, ("resources.cpus_per_worker must be a number > 0, got -1",)),
        ({"resources": {"cpus_per_worker": "one"}}, ("resources.cpus_per_worker must be a number > 0",)),
        ({"resources": {"gpus_per_worker": -0.5}}, ("resources.gpus_per_worker must be a number >= 0",)),
        ({"resources": {"num_workers": 0}}, ("resources.num_workers must be an integer >= 1",)),
        ({"data": {"glue_dir": "x", "max_length": 0}}, ("data.max_length must be an integer >= 8",)),
        ({"data": {"glue_dir": "x", "max_length": "64"}}, ("data.max_length must be an integer >= 8, got '64'",)),
        ({"data": {"glue_dir": "x", "labels": []}}, ("data.labels: give a list of label values",)),
        ({"data": {"glue_dir": ["a", "b"]}}, ("data.glue_dir takes one value",)),
        ({"seed": 1.5}, ("seed must be an integer",)),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else None,
)
def test_scalar_sections_are_checked(sections, fragments):
    refused(minimal(**sections), *fragments)


def test_scalar_sections_convert_types():
    space = parse_space(minimal(budget={"num_samples": 3, "time_budget_s": 60},
                                resources={"cpus_per_worker": 2, "gpus_per_worker": 0.5, "max_failures": 0},
                                data={"glue_dir": "x", "text_columns": "sentence"}))
    assert space.budget.time_budget_s == 60.0 and type(space.budget.time_budget_s) is float
    assert space.resources.cpus_per_worker == 2.0 and type(space.resources.cpus_per_worker) is float
    assert space.resources.use_gpu and space.resources.max_failures == 0
    assert space.data.text_columns == ("sentence",)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_out_of_numpy_range_is_refused(seed):
    refused(minimal(seed=seed), "seed")


@needs_shared
def test_negative_seed_in_check_inputs_is_an_input_error(tmp_path):
    from raykd.checks import check_inputs

    raw = tiny_raw()
    raw["seed"] = -1
    with pytest.raises(RaykdInputError, match="seed"):
        check_inputs(load_space(write(tmp_path, raw)))


# --------------------------------------------------------------------------------------------
# step


def test_step_is_kept():
    space = parse_space(minimal(students={"transformer": {"hidden_size": {"low": 64, "high": 256, "step": 64},
                                                          "num_heads": [2, 4]}},
                                methods={"vanilla": {"alpha": {"low": 0.0, "high": 1.0, "step": 0.25}}}))
    assert space.students["transformer"]["hidden_size"] == Range(64, 256, step=64, is_int=True)
    assert space.methods["vanilla"]["alpha"] == Range(0.0, 1.0, step=0.25)


@pytest.mark.parametrize("step", [0, -0.1, "x"])
def test_non_positive_or_non_numeric_step_is_refused(step):
    refused(minimal(methods={"vanilla": {"alpha": {"low": 0.0, "high": 1.0, "step": step}}}), "step")


def test_fractional_step_on_an_int_range_is_an_input_error():
    refused(minimal(students={"transformer": {"hidden_size": {"low": 64, "high": 128, "step": 0.5}}}), "step")


# --------------------------------------------------------------------------------------------
# overrides (--set)


def test_overrides_apply(tmp_path):
    path = write(tmp_path, tiny_raw())
    space = load_space(path, {"budget.num_samples": 3, "methods.vanilla.alpha": 0.5,
                              "students.bilstm.hidden_dim": [16, 32, 64], "training.lr": {"low": 1e-4, "high": 1e-2}})
    assert space.budget.num_samples == 3
    assert space.methods["vanilla"]["alpha"] == Fixed(0.5)
    assert space.students["bilstm"]["hidden_dim"] == Choice((16, 32, 64))
    assert space.training["lr"] == Range(1e-4, 1e-2)
    assert space.budget.max_concurrent == 2  # untouched
    # the saved space is the one that runs (a resumed sweep reloads it), and says where it came from
    assert space.source.startswith(f"# {path} with --set budget.num_samples=3")
    assert parse_space(yaml.safe_load(space.source), default_name=space.name) == dataclasses.replace(
        space, source=parse_space(yaml.safe_load(space.source)).source)
    assert load_space(path).source == path.read_text()  # without overrides: the file as written


def test_overrides_can_add_sections_and_components(tmp_path):
    raw = tiny_raw()
    del raw["training"], raw["students"]["transformer"]
    space = load_space(write(tmp_path, raw), {"training.epochs": 4, "students.transformer.num_layers": 2})
    assert space.training["epochs"] == Fixed(4)
    assert space.students["transformer"]["num_layers"] == Fixed(2)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        ({"budget.num_samples": 0}, ("budget.num_samples must be an integer >= 1",)),
        ({"methods.vanilla.alpha": 1.5}, ("methods.vanilla.alpha must be <= 1",)),
        ({"methods.vanilla.temprature": 2.0}, ("unknown key 'methods.vanilla.temprature'", "'temperature'")),
        ({"methods.vanila.alpha": 0.5}, ("unknown method 'vanila'",)),
        ({"budget.num_samples.x": 1}, ("override budget.num_samples.x: 'num_samples' is not a section",)),
        ({"trainig.lr": 0.1}, ("unknown key 'trainig'", "did you mean 'training'?")),
    ],
    ids=["num-samples", "alpha", "key-typo", "method-typo", "not-a-section", "section-typo"],
)
def test_overrides_are_validated_like_the_file(tmp_path, overrides, fragments):
    with pytest.raises(RaykdInputError) as err:
        load_space(write(tmp_path, tiny_raw()), overrides)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_missing_space_file(tmp_path):
    with pytest.raises(RaykdInputError, match="does not exist; give the path of a YAML file"):
        load_space(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"], ids=["empty", "list", "scalar"])
def test_space_file_must_be_a_mapping(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(RaykdInputError, match="must hold a YAML mapping"):
        load_space(path)


# --------------------------------------------------------------------------------------------
# transformer: check_space


def test_transformer_refuses_hidden_size_not_divisible_by_heads(tmp_path):
    # combinations are checked by check_inputs (with the teacher known), before Ray starts
    from raykd.checks import check_inputs

    def checked(students):
        return check_inputs(parse_space(minimal(students=students)))

    for students, fragment in (
        ({"transformer": {"hidden_size": 100, "num_heads": 3}},
         "students.transformer: hidden_size 100 is not divisible by num_heads 3"),
        ({"transformer": {"hidden_size": [64, 96], "num_heads": [2, 4, 64]}},
         "hidden_size 96 is not divisible by num_heads 64"),
    ):
        with pytest.raises(RaykdInputError, match=fragment):
            checked(students)
    # every combination divides: fine
    checked({"transformer": {"hidden_size": [64, 128], "num_heads": [2, 4, 8]}})


def test_transformer_width_is_not_checked_for_teacher_init_only():
    transformer.check_space({"init": Fixed("teacher_first"), "num_layers": Fixed(2), "hidden_size": Fixed(100),
                             "num_heads": Fixed(3)}, {"model_type": "bert", "num_hidden_layers": 6})


@pytest.mark.parametrize("init", ["teacher_skip", ["random", "teacher_first"]])
def test_teacher_init_parses(init):
    space = parse_space(minimal(students={"transformer": {"init": init, "num_layers": 3}}))
    assert "transformer" in space.students


def _with_transformer(space: SweepConfig, **domains) -> SweepConfig:
    """Put transformer domains into a parsed space directly (parse_space refuses teacher inits, see above)."""
    students = {**space.students, "transformer": {**space.students["transformer"], **domains}}
    return dataclasses.replace(space, students=students)


@needs_shared
@pytest.mark.parametrize("num_layers", [Fixed(8), Choice((2, 7)), Range(1, 12, is_int=True)],
                         ids=["fixed", "choice", "range"])
def test_check_inputs_refuses_teacher_init_beyond_teacher_layers(tmp_path, num_layers):
    from raykd.checks import check_inputs

    space = _with_transformer(load_space(write(tmp_path, tiny_raw())),
                              init=Choice(("random", "teacher_skip")), num_layers=num_layers)
    most = int(max(num_layers.values)) if isinstance(num_layers, Choice) else int(
        num_layers.value if isinstance(num_layers, Fixed) else num_layers.high)
    with pytest.raises(RaykdInputError) as err:
        check_inputs(space)
    assert str(err.value) == (
        f"students.transformer: num_layers {most} exceeds the teacher's 6 layers, so init teacher_skip cannot "
        "copy them; choose num_layers <= 6 or init random")


@needs_shared
def test_check_inputs_accepts_teacher_init_within_teacher_layers(tmp_path):
    from raykd.checks import check_inputs

    space = _with_transformer(load_space(write(tmp_path, tiny_raw())),
                              init=Choice(("teacher_first", "teacher_skip")), num_layers=Range(1, 6, is_int=True))
    assert check_inputs(space).teacher.config["num_hidden_layers"] == 6


@needs_shared
def test_check_inputs_refuses_a_non_bert_teacher_for_teacher_init(tmp_path):

    from raykd.checks import check_inputs

    teacher_copy(tmp_path / "teacher", config={"model_type": "distilbert"})
    raw = tiny_raw()
    raw["teacher"]["path"] = str(tmp_path / "teacher")
    space = _with_transformer(load_space(write(tmp_path, raw)), init=Fixed("teacher_last"))
    with pytest.raises(RaykdInputError, match="needs a BERT teacher, got model_type 'distilbert'; use init random"):
        check_inputs(space)


@needs_shared
def test_check_inputs_refuses_bilstm_wider_than_teacher_embeddings(tmp_path):
    from raykd.checks import check_inputs

    space = load_space(write(tmp_path, tiny_raw()), {"students.bilstm.embedding_dim": [64, 512]})
    with pytest.raises(RaykdInputError, match="embedding_dim 512 exceeds the teacher's embedding width 384"):
        check_inputs(space)


# --------------------------------------------------------------------------------------------
# check_inputs on the tiny space


@needs_shared
def test_check_inputs_on_the_tiny_space(tmp_path):
    from raykd.checks import check_inputs

    space = load_space(write(tmp_path, tiny_raw()))
    before = sorted(tmp_path.rglob("*"))
    inputs = check_inputs(space)
    assert inputs.task.name == "sst2"
    assert inputs.task.label_names == ("negative", "positive")
    assert not inputs.task.is_pair and not inputs.task.is_regression
    assert set(inputs.frames) == {"train", "dev"}
    assert len(inputs.frames["train"]) == 2000
    assert len(inputs.frames["dev"]) == 872
    for frame in inputs.frames.values():
        assert list(frame.columns) == ["text_a", "label"]
        assert set(frame["label"].unique()) <= {0, 1}
    assert inputs.teacher.num_labels == 2
    assert inputs.teacher.label_names == ("negative", "positive")
    assert inputs.teacher.path == str(TEACHER.resolve())
    assert sorted(tmp_path.rglob("*")) == before  # reads only


@needs_shared
def test_check_inputs_train_limit_is_a_seeded_sample(tmp_path):
    from raykd.checks import check_inputs

    space = load_space(write(tmp_path, tiny_raw()))
    first = check_inputs(space).frames["train"]
    again = check_inputs(space).frames["train"]
    other = check_inputs(dataclasses.replace(space, seed=1)).frames["train"]
    assert first.equals(again)
    assert not first.equals(other)


@needs_shared
@pytest.mark.parametrize(
    "data, fragment",
    [
        # a GLUE task with no source reads the hub's GLUE dataset, which this machine cannot reach
        ({"max_length": 64}, "could not load hub dataset nyu-mll/glue (sst2, train)"),
        ({"glue_dir": str(GLUE), "train": "x.csv", "dev": "y.csv"}, "(got glue_dir, train)"),
        ({"train": "x.csv"}, "data.dev: give a dev file next to data.train"),
        ({"glue_dir": str(GLUE), "labels": ["a", "b"]}, "only apply to your own tasks"),
    ],
    ids=["no-source-hub", "two-sources", "train-without-dev", "glue-with-labels"],
)
def test_check_inputs_data_source(tmp_path, data, fragment):
    from raykd.checks import check_inputs

    raw = tiny_raw()
    raw["data"] = data
    with pytest.raises(RaykdInputError) as err:
        check_inputs(load_space(write(tmp_path, raw)))
    assert fragment in str(err.value)
