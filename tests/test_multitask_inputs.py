"""Multi-task spaces (``tasks: [...]``): parsing, per-task teachers, skipped tasks and clear errors, without Ray."""

from pathlib import Path

import pytest

from conftest import BASE, GLUE, TEACHER
from raykd.checks import check_inputs, check_multi_task_inputs, task_space
from raykd.config import load_space, parse_space
from raykd.errors import RaykdInputError


def _raw(**changes) -> dict:
    raw = {"tasks": ["sst2", "rte"], "data": {"glue_dir": str(GLUE), "train_limit": 32, "dev_limit": 16},
           "teacher": {"paths": {"sst2": str(TEACHER)}, "base": str(BASE), "fine_tune": True},
           "methods": {"vanilla": {}, "multitask": {"sampling": ["proportional", "temperature"]}},
           "students": {"bilstm": {"pooling": "attention"}}}
    raw.update(changes)
    return raw


def test_each_task_gets_its_ready_teacher_or_the_base_to_fine_tune():
    space = parse_space(_raw())
    assert space.multi_task and space.tasks == ("sst2", "rte") and space.task == "sst2+rte"
    checked = check_multi_task_inputs(space, echo=lambda line: None)
    assert list(checked) == ["sst2", "rte"]
    assert not checked["sst2"].fine_tune and Path(checked["sst2"].inputs.teacher.path) == TEACHER.resolve()
    assert checked["rte"].fine_tune and Path(checked["rte"].inputs.teacher.path) == BASE.resolve()
    assert len(checked["rte"].inputs.frames["train"]) == 32
    assert "multitask" not in checked["rte"].space.methods  # per-task spaces hold the single-task methods


def test_tasks_without_local_files_are_skipped_with_a_notice():
    lines = []
    checked = check_multi_task_inputs(parse_space(_raw(tasks=["sst2", "qqp", "wnli"])), echo=lines.append)
    assert list(checked) == ["sst2"]
    assert lines == [f"skipping task qqp: data.glue_dir: missing file {GLUE}/QQP/train.tsv",
                     f"skipping task wnli: data.glue_dir: missing file {GLUE}/WNLI/train.tsv"]
    with pytest.raises(RaykdInputError, match="none of the tasks qqp, mnli has data"):
        check_multi_task_inputs(parse_space(_raw(tasks=["qqp", "mnli"])), echo=lambda line: None)


@pytest.mark.parametrize("changes, message", [
    ({"task": "sst2"}, "give either task .* or tasks"),
    ({"tasks": []}, "tasks must be a non-empty list"),
    ({"tasks": ["sst2", "sst2"]}, "lists a task twice"),
    ({"teacher": {"base": str(BASE), "fine_tune": "yes"}}, "teacher.fine_tune must be true or false"),
    ({"teacher": {"paths": ["a"]}}, "teacher.paths must map task names"),
])
def test_bad_multi_task_spaces_fail_at_parse(changes, message):
    with pytest.raises(RaykdInputError, match=message):
        parse_space(_raw(**changes))


def test_a_task_without_a_teacher_is_refused_with_the_fix():
    space = parse_space(_raw(teacher={"paths": {"sst2": str(TEACHER)}}))
    with pytest.raises(RaykdInputError, match="task rte has no teacher; give teacher.paths.rte .* or teacher.base "
                                              "with fine_tune: true"):
        check_multi_task_inputs(space, echo=lambda line: None)


def test_multitask_needs_a_multi_task_space():
    raw = _raw()
    raw.pop("tasks")
    raw.update(task="sst2", teacher={"path": str(TEACHER)})
    with pytest.raises(RaykdInputError, match="methods.multitask distils several tasks at once"):
        check_inputs(parse_space(raw))


def test_multitask_runs_on_one_worker():
    with pytest.raises(RaykdInputError, match="multitask runs on one worker per trial"):
        check_multi_task_inputs(parse_space(_raw(resources={"num_workers": 2})), echo=lambda line: None)


def test_a_single_task_space_can_fine_tune_its_teacher_too():
    space = parse_space({"task": "rte", "data": {"glue_dir": str(GLUE), "train_limit": 16},
                         "teacher": {"base": str(BASE), "fine_tune": True}, "methods": {"vanilla": {}},
                         "students": {"bilstm": {}}})
    inputs = check_inputs(space)  # the base has no RTE head yet: no label check
    assert Path(inputs.teacher.path) == BASE.resolve()


def test_glue_tasks_default_to_the_hub_and_glue_all_lists_nine_tasks():
    space = load_space("glue_all")
    assert len(space.tasks) == 9 and set(space.methods) == {"vanilla", "zero_shot", "generation", "multitask"}
    assert set(space.students) == {"bilstm", "transformer"}
    one = task_space(space, "mnli")
    assert one.data.hub == "nyu-mll/glue" and one.data.hub_config == "mnli"
    local = task_space(load_space("glue_all", {"data.glue_dir": str(GLUE)}), "cola")
    assert local.data.source == "glue" and local.data.hub is None


def test_zero_shot_without_ood_text_needs_no_corpus():
    from raykd.checks import _needs_ood

    assert not _needs_ood("zero_shot", parse_space(_raw(methods={"zero_shot": {"ood_fraction": 0.0}})).methods["zero_shot"])
    assert _needs_ood("zero_shot", parse_space(_raw(methods={"zero_shot": {"ood_fraction": [0.0, 0.5]}})).methods["zero_shot"])


def test_the_first_trials_take_single_task_kd_and_both_multitask_arms():
    from raykd.sweep.run import first_points

    space = load_space("glue_local")
    assert first_points(space, 8) == [{"method": "vanilla"},
                                      {"method": "multitask", "multitask/finetune_epochs": 0},
                                      {"method": "multitask", "multitask/finetune_epochs": 2}]
