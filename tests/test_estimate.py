"""The cost estimate: its arithmetic scales with the work, cached stages cost nothing, deadlines warn,
``raykd validate --estimate`` prints the table (unit tier: no Ray; the CLI test calibrates for real)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import assert_input_error, invoke_cli, tiny_space_raw, write_space
from raykd.errors import RaykdInputError
from raykd.sweep.calibrate import Cost, Measurements
from raykd.sweep.estimate import (PROCESS_START_S, RAY_START_S, TRIAL_START_S, SweepEstimate, StageEstimate,
                                  _build_s, deadline_warnings, format_duration, parse_duration, predict)
from raykd.sweep.timing import StageClock
from raykd.sweep.workload import (FineTuneWork, SoftWork, SweepWork, TaskWork, TransferWork, TrialKind, TrialWork,
                                  expected_distinct, family_configs, loop_batches, sorted_batches)

LENGTHS = np.random.default_rng(0).integers(5, 40, size=1024)
START = TRIAL_START_S + PROCESS_START_S  # every trial's fixed part


def _task(**changes) -> TaskWork:
    task = TaskWork(name="sst2", sample=None, lengths=LENGTHS, train_rows=50_000, eval_lengths=(LENGTHS[:800],),
                    to_label={"train": 50_000}, fine_tune="no", teacher_path="t", teacher_config={}, num_labels=2)
    return replace(task, **changes)


def _measured(**changes) -> dict:
    """Made-up costs: 1 us per padded token for the teacher, 0.2 us for students, small per-batch parts."""
    m = Measurements(seconds=1.0, threads=2, device="cpu", tokenize=Cost(0.0, 1e-5), teacher_load=0.5,
                     teacher_latency=0.01, teacher_forward=Cost(1e-3, 1e-6), teacher_train=Cost(5e-2, 3e-6),
                     students={"bilstm": Cost(1e-2, 2e-7)}, student_eval={"bilstm": Cost(0.0, 1e-7)},
                     student_build={"bilstm": 0.5}, tang=Cost(1.0, 1e-4), tang_rows=0.6,
                     generator_train=Cost(1.0, 3e-3), generator_sample=Cost(0.5, 5e-3))
    m = replace(m, **changes)
    return {"teacher": m, "soft_targets": m, "transfer_sets": m, "trials": m}


def _work(tasks=None, *, replicas=1, trials=8, concurrency=2, transfers=(), kinds=None) -> SweepWork:
    kinds = kinds or (TrialKind("vanilla", "bilstm", 1.0, epochs=2, batch_size=64),)
    return SweepWork(
        tasks=tuple(tasks or [_task()]),
        fine_tune=FineTuneWork(epochs=3, batch_size=32, slots=1, threads=2, gpu=False, ray_options={}),
        soft=SoftWork(replicas=replicas, batch_size=128, threads=2, gpu=False, ray_options={}),
        transfers=tuple(transfers),
        trials=TrialWork(trials=trials, concurrency=concurrency, num_workers=1, threads=1, gpu=False, kinds=kinds),
        where="test")


def _stage(estimate: SweepEstimate, name: str) -> StageEstimate:
    return estimate.by_stage()[name]


def _soft_fixed(m: Measurements) -> float:
    return RAY_START_S + PROCESS_START_S + 2 * m.teacher_load + 110 * m.teacher_latency


def test_soft_targets_scale_with_examples_and_replicas():
    m = _measured()
    fixed = _soft_fixed(m["soft_targets"])
    one = _stage(predict(_work(), m), "soft_targets").seconds - fixed
    twice = _stage(predict(_work([_task(to_label={"train": 100_000})]), m), "soft_targets").seconds - fixed
    halved = _stage(predict(_work(replicas=2), m), "soft_targets").seconds - fixed
    assert one > 1.0
    assert twice / one == pytest.approx(2.0, rel=0.02)
    assert halved / one == pytest.approx(0.5, rel=0.02)


def test_soft_targets_follow_the_teacher_cost_and_the_lengths():
    m = _measured()
    base = _stage(predict(_work(), m), "soft_targets").seconds - _soft_fixed(m["soft_targets"])
    slower = _measured(teacher_forward=Cost(2e-3, 2e-6), tokenize=Cost(0.0, 2e-5))
    doubled = _stage(predict(_work(), slower), "soft_targets").seconds - _soft_fixed(slower["soft_targets"])
    longer = (_stage(predict(_work([_task(lengths=LENGTHS * 2)]), m), "soft_targets").seconds
              - _soft_fixed(m["soft_targets"]))
    assert doubled / base == pytest.approx(2.0, rel=0.02)
    tokens = sorted_batches(LENGTHS, 50_000, 128)[1]
    assert longer - base == pytest.approx(tokens * 1e-6, rel=0.01)  # only the per-token part doubles


def test_trials_scale_with_trials_rows_epochs_and_concurrency():
    m = _measured()
    per_trial = _stage(predict(_work(trials=1, concurrency=1), m), "trials").seconds
    assert per_trial > START
    assert _stage(predict(_work(trials=8, concurrency=2), m), "trials").seconds == pytest.approx(4 * per_trial)
    loop = per_trial - START - 0.5
    more_rows = _stage(predict(_work([_task(train_rows=100_000)], trials=1, concurrency=1), m), "trials").seconds
    assert (more_rows - START - 0.5) / loop == pytest.approx(2.0, rel=0.05)
    three = (TrialKind("vanilla", "bilstm", 1.0, epochs=3, batch_size=64),)
    assert (_stage(predict(_work(trials=1, concurrency=1, kinds=three), m), "trials").seconds
            - START - 0.5) / loop == pytest.approx(1.5, rel=0.01)


def test_trials_weigh_families_by_their_share():
    m = _measured(students={"bilstm": Cost(1e-2, 2e-7), "transformer": Cost(1e-1, 2e-6)},
                  student_eval={"bilstm": Cost(0, 1e-7), "transformer": Cost(0, 1e-6)},
                  student_build={"bilstm": 0.5, "transformer": 0.5})

    def seconds(shares):
        kinds = tuple(TrialKind("vanilla", f, s, epochs=1, batch_size=64) for f, s in shares.items())
        return _stage(predict(_work(trials=1, concurrency=1, kinds=kinds), m), "trials").seconds

    bilstm, transformer = seconds({"bilstm": 1.0}), seconds({"transformer": 1.0})
    assert transformer > 5 * bilstm - 4 * START
    assert seconds({"bilstm": 0.5, "transformer": 0.5}) == pytest.approx((bilstm + transformer) / 2)


def test_drawn_trials_are_costed_by_their_own_architecture():
    """The sampler's first draws are known: a drawn big transformer costs its own step cost, not the family mean."""
    small, big = Cost(1e-2, 2e-7), Cost(1e-1, 4e-6)
    mean = Cost(5.5e-2, 2.1e-6)
    m = _measured(students={"transformer": mean}, student_eval={"transformer": Cost(0, 1e-6)},
                  student_build={"transformer": 0.5},
                  architectures={"transformer": [({"init": "random", "num_layers": 1}, small, Cost(0, 1e-7)),
                                                 ({"init": "teacher_skip", "num_layers": 2}, big, Cost(0, 2e-6))]})
    kinds = (TrialKind("vanilla", "transformer", 1.0, epochs=1, batch_size=64),)

    def seconds(drawn, trials=2):
        work = _work(trials=trials, concurrency=1, kinds=kinds)
        work = replace(work, trials=replace(work.trials, drawn=drawn))
        return _stage(predict(work, m), "trials")

    def one(step, ev):
        return _stage(predict(_work(trials=1, concurrency=1, kinds=kinds), _measured(
            students={"transformer": step}, student_eval={"transformer": ev}, student_build={"transformer": 0.5})),
            "trials").seconds

    averaged = seconds(())
    assert averaged.seconds == pytest.approx(2 * one(mean, Cost(0, 1e-6)))
    big_draw = ("vanilla", "transformer", {"init": "teacher_skip", "num_layers": 2, "training": {"lr": 3e-4}})
    small_draw = ("vanilla", "transformer", {"init": "random", "num_layers": 1, "hidden_size": 64})
    both_big = seconds((big_draw, big_draw))
    assert both_big.seconds == pytest.approx(2 * one(big, Cost(0, 2e-6)))
    assert "2 trial(s): the sampler's first 2 draws" in both_big.detail
    mixed = seconds((big_draw, small_draw), trials=3)  # the third trial is not drawn yet: the family mean
    assert mixed.seconds == pytest.approx(one(big, Cost(0, 2e-6)) + one(small, Cost(0, 1e-7)) + one(mean, Cost(0, 1e-6)))
    assert seconds((big_draw, big_draw), trials=1).seconds == pytest.approx(one(big, Cost(0, 2e-6)))


def test_cached_stages_count_zero_and_say_so():
    m = _measured()
    work = _work([_task(to_label={}, fine_tune="cached")],
                 transfers=[TransferWork("tang", {}, builds=1.0, source_rows=1000, iterations=20, cached=True)])
    estimate = predict(work, m)
    for name in ("teacher", "soft_targets", "transfer_sets"):
        stage = _stage(estimate, name)
        assert (stage.seconds, stage.status) == (0.0, "cached"), name
        assert "cached" in stage.detail
    assert estimate.total == _stage(estimate, "trials").seconds
    table = estimate.describe()
    assert table.count("cached") == 3 and "total" in table


def test_teacher_stage_counts_teachers_and_how_many_run_at_once():
    m = _measured()
    one = _stage(predict(_work([_task(fine_tune="todo")]), m), "teacher").seconds - RAY_START_S
    two = _work([_task(fine_tune="todo", name="a"), _task(fine_tune="todo", name="b")])
    side_by_side = replace(two, fine_tune=replace(two.fine_tune, slots=2))
    assert one > 3 * 50_000 / 32 * 5e-2  # 3 epochs of steps at 50 ms at least
    assert _stage(predict(two, m), "teacher").seconds - RAY_START_S == pytest.approx(2 * one)
    assert _stage(predict(side_by_side, m), "teacher").seconds - RAY_START_S == pytest.approx(one)
    attached = replace(side_by_side, ray_started=True)  # --address: the cluster is up, no stage starts Ray
    assert _stage(predict(attached, m), "teacher").seconds == pytest.approx(one)
    soft = _stage(predict(_work([_task(fine_tune="todo")]), m), "soft_targets").seconds
    assert soft == pytest.approx(_stage(predict(_work(), m), "soft_targets").seconds - RAY_START_S)


def test_teachers_beyond_the_cores_share_them():
    """3 one-thread teachers on the local instance's 3 logical CPUs of 2 cores: 2 run at full speed."""
    m = _measured()
    one = _stage(predict(_work([_task(fine_tune="todo")]), m), "teacher").seconds - RAY_START_S
    three = _work([_task(fine_tune="todo", name=n) for n in "abc"])
    scheduled = replace(three, fine_tune=replace(three.fine_tune, slots=3, threads=1, full_speed=3))
    on_two_cores = replace(three, fine_tune=replace(three.fine_tune, slots=3, threads=1, full_speed=2))
    assert _stage(predict(scheduled, m), "teacher").seconds - RAY_START_S == pytest.approx(one)
    shared = _stage(predict(on_two_cores, m), "teacher")
    assert shared.seconds - RAY_START_S == pytest.approx(1.5 * one)
    assert "2 at full speed" in shared.detail


def test_the_local_instance_plans_teachers_at_its_cores(monkeypatch):
    from types import SimpleNamespace

    from raykd.stages import StagePlan
    from raykd.sweep import workload

    monkeypatch.setattr(workload.os, "cpu_count", lambda: 2)
    space = SimpleNamespace(resources=SimpleNamespace(cpus_per_worker=1),
                            teacher=SimpleNamespace(fine_tune_epochs=3, fine_tune_batch_size=32))
    plan = StagePlan(cpus=None)
    local = workload._fine_tune(space, plan, {"CPU": 3.0}, todo=4, cores=2)
    assert (local.slots, local.threads, local.full_speed) == (3, 1, 2)
    cluster = workload._fine_tune(space, plan, {"CPU": 8.0}, todo=4, cores=4, nodes=[{"CPU": 4.0}, {"CPU": 4.0}])
    assert (cluster.slots, cluster.full_speed) == (4, 4)


def test_transfer_sets_use_the_measured_novel_rows_and_count_builds():
    m = _measured()
    tang = TransferWork("tang", {}, builds=1.0, source_rows=1000, iterations=20)
    one = _stage(predict(_work(transfers=[tang]), m), "transfer_sets")
    two = _stage(predict(_work(transfers=[replace(tang, builds=2.0)]), m), "transfer_sets")
    assert one.status == "estimated" and "12,000 rows" in one.detail  # 0.6 novel rows per pass x 20, not n_iter 20
    assert two.seconds == pytest.approx(2 * one.seconds)
    unmeasured = _stage(predict(_work(transfers=[tang]), _measured(tang_rows=None)), "transfer_sets")
    assert "20,000 rows" in unmeasured.detail
    kinds = (TrialKind("vanilla", "bilstm", 1.0, epochs=1, batch_size=64, transfers=((tang, 0.5),)),)
    plain = _stage(predict(_work(trials=1, concurrency=1), m), "trials").seconds
    augmented = _stage(predict(_work(trials=1, concurrency=1, kinds=kinds, transfers=[tang]), m), "trials")
    assert "56,000 rows" in augmented.detail  # 50,000 + half the trials' 12,000 augmented rows
    assert augmented.seconds > plain / 2


def test_time_budget_caps_the_trials():
    m = _measured()
    work = _work()
    capped = replace(work, trials=replace(work.trials, time_budget_s=30.0))
    stage = _stage(predict(capped, m), "trials")
    assert stage.seconds == 30.0 and "time_budget_s" in stage.detail


def test_batches_are_counted_as_the_loops_cut_them():
    lengths = np.array([10] * 50 + [30] * 50)
    assert sorted_batches(lengths, 100, 50) == (2, 50 * 10 + 50 * 30)
    steps, tokens = loop_batches(LENGTHS, 10_000, 64)
    assert steps == int(np.ceil(10_000 / 64))
    assert LENGTHS.mean() * 10_000 < tokens < LENGTHS.max() * 10_000
    assert sorted_batches(LENGTHS, 10_000, 64)[1] < tokens  # a full sort pads least


def test_cost_fit_recovers_a_line_and_refuses_negative_parts():
    fitted = Cost.fit([0.1 + 2e-4 * u for u in (500, 1000, 2000)], [500, 1000, 2000])
    assert fitted.per_call == pytest.approx(0.1) and fitted.per_unit == pytest.approx(2e-4)
    noisy = Cost.fit([0.5, 0.4], [100, 1000])  # slower on the smaller batch: noise, not a negative cost
    assert noisy.per_call == pytest.approx(0.45) and noisy.per_unit == 0.0
    assert Cost.fit([1.0], [100]).per_unit == pytest.approx(0.01)


def test_family_configs_follow_the_sampler():
    from raykd.config import parse_space
    from raykd.registry import STUDENTS

    space = parse_space(tiny_space_raw({"students.transformer": {"init": ["random", "teacher_skip"],
                                                                 "num_layers": [1, 2], "hidden_size": [64, 128]}}))
    configs = family_configs(space.students["transformer"], STUDENTS.load("transformer").active)
    assert sum(p for _, p in configs) == pytest.approx(1.0)
    skip = [p for c, p in configs if c["init"] == "teacher_skip"]
    assert len(configs) == 6 and sum(skip) == pytest.approx(0.5)
    assert all("hidden_size" not in c for c, _ in configs if c["init"] == "teacher_skip")
    few = family_configs(space.students["transformer"], STUDENTS.load("transformer").active, cap=3)
    assert len(few) <= 3 and sum(p for _, p in few) == pytest.approx(1.0)


def test_expected_distinct_settings():
    assert expected_distinct(1, 8) == pytest.approx(1.0)
    assert expected_distinct(None, 8) == 8.0
    assert 1.0 < expected_distinct(4, 2) < 2.0
    assert expected_distinct(3, 0) == 0.0


@pytest.mark.parametrize("text, seconds", [("90m", 5400), ("24h", 86400), ("3600s", 3600), ("1.5d", 129600),
                                           ("45", 45), (" 2H ", 7200)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-1h", "0", "0m", "5w", "1h30m"])
def test_parse_duration_refuses(text):
    with pytest.raises(RaykdInputError, match="--deadline"):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(s) for s in (42, 852, 3 * 3600, 2 * 86400)] == ["42 s", "14.2 min", "3.0 h", "2.0 d"]


def test_deadline_warnings():
    estimate = SweepEstimate([StageEstimate("teacher", 0.0, "none"), StageEstimate("soft_targets", 600.0),
                              StageEstimate("transfer_sets", 0.0, "none"), StageEstimate("trials", 3000.0)])
    assert deadline_warnings(estimate, 3600.0, 10) == []
    lines = deadline_warnings(estimate, 1800.0, 10)
    assert lines[0].startswith("warning: the sweep is estimated at 1.0 h, more than the deadline of 30.0 min")
    assert "about 4 of the 10 trials fit" in lines[0]  # (1800 - 600) / 300 s per trial
    assert len(lines) == 2 and "the trials stage alone" in lines[1]
    assert all("soft targets stage" not in line for line in lines)


def test_stage_clock_counts_only_builds_after_it_started(tmp_path):
    log = tmp_path / "transfer_sets" / "builds.log"
    log.parent.mkdir()
    log.write_text("k1 tang pid=1 rows=10 seconds=100.0\n")
    estimate = SweepEstimate([StageEstimate("teacher", 0.0, "none"), StageEstimate("soft_targets", 10.0),
                              StageEstimate("transfer_sets", 30.0), StageEstimate("trials", 60.0)])
    clock = StageClock(tmp_path, estimate)
    with clock.stage("soft_targets"):
        pass
    with open(log, "a") as handle:
        handle.write("k2 tang pid=2 rows=10 seconds=12.5\nk3 generation pid=2 rows=10 seconds=7.5\n")
    stages = clock.record()["stages"]
    assert stages["transfer_sets"] == {"estimate": 30.0, "actual": 20.0, "status": "estimated"}
    assert stages["soft_targets"]["actual"] is not None and stages["trials"]["actual"] is None
    assert list(stages) == ["teacher", "soft_targets", "transfer_sets", "trials"]


def test_stage_times_report():
    from raykd.report import markdown_stage_times, stage_times_frame

    stages = {"teacher": {"estimate": 0.0, "actual": 0.1, "status": "none"},
              "soft_targets": {"estimate": 50.0, "actual": 40.0, "status": "estimated"},
              "trials": {"estimate": 600.0, "actual": 660.0, "status": "estimated"}}
    frame = stage_times_frame(stages)
    assert list(frame["stage"]) == ["teacher", "soft targets", "trials", "total"]
    assert frame["ratio"].tolist()[1:] == pytest.approx([0.8, 1.1, 700.1 / 650.0])
    assert np.isnan(frame["ratio"][0])
    text = markdown_stage_times(stages)
    assert "| soft targets | 50 s | 40 s | 0.80 |" in text and "| teacher | 0 s (none) | 0 s | - |" in text
    assert "| trials | 10.0 min | 11.0 min | 1.10 |" in text


# --------------------------------------------------------------------------- real inputs, real calibration

@pytest.fixture(scope="module")
def tiny_space(tmp_path_factory):
    folder = tmp_path_factory.mktemp("estimate")
    raw = tiny_space_raw({"data.train_limit": 200, "data.dev_limit": 200})
    return write_space(folder / "space.yaml", raw), folder


def test_validate_estimate_prints_the_stages_warns_and_writes_nothing(tiny_space):
    path, folder = tiny_space
    storage = folder / "runs"
    result, writes = invoke_cli(["validate", "--space", str(path), "--storage", str(storage), "--estimate",
                                 "--deadline", "2s"], [folder])
    assert result.exit_code == 0, (result.output, result.exception)
    assert not writes and not storage.exists()
    table = result.output[result.output.index("cost estimate on this machine"):]
    rows = {line.split()[0]: line for line in table.splitlines()[1:6]}
    assert set(rows) == {"teacher", "soft", "transfer", "trials", "total"}
    assert "none: a ready teacher" in rows["teacher"]
    assert "200 (train) examples" in rows["soft"]  # dev was measured by the checks: not computed again
    assert "2 trial(s)" in rows["trials"] and "vanilla/bilstm 50%" in rows["trials"]
    calibrated = float(table.split("calibrated in ")[1].split(" s")[0])
    assert 0 < calibrated < 60
    assert "warning: the sweep is estimated at" in table and "more than the deadline of 2 s" in table


def test_a_bad_deadline_is_refused_before_anything(tiny_space):
    path, folder = tiny_space
    for command in ("validate", "sweep"):
        bad, writes = invoke_cli([command, "--space", str(path), "--storage", str(folder / "runs"),
                                  "--deadline", "soon"], [folder])
        assert_input_error(bad, writes, ["--deadline soon"])


def test_plan_work_sees_cached_soft_targets(tiny_space, tmp_path):
    from raykd.config import load_space
    from raykd.sweep.preflight import SweepOptions, preflight
    from raykd.sweep.workload import plan_work
    from raykd.teachers.cache import cached_teacher_outputs

    path, _ = tiny_space
    pre = preflight(load_space(path), SweepOptions(storage=str(tmp_path / "runs"), echo=lambda _: None))
    cluster = {"CPU": 3.0, "GPU": 0.0}
    (task,) = plan_work(pre, cluster).tasks
    assert task.to_label == {"train": 200} and task.fine_tune == "no"
    assert len(task.eval_lengths[0]) == 200 and len(task.lengths) == 200
    frames = pre.single.inputs.frames
    cached_teacher_outputs(pre.single.inputs.teacher.path, {"train": frames["train"]}, max_length=64,
                           cache_dir=pre.cache)
    work = plan_work(pre, cluster)
    assert work.tasks[0].to_label == {}
    estimate = predict(work, _measured(students={"bilstm": Cost(0.01, 1e-7), "transformer": Cost(0.01, 1e-7)},
                                       student_eval={"bilstm": Cost(0, 1e-7), "transformer": Cost(0, 1e-7)}))
    assert _stage(estimate, "soft_targets").status == "cached"
    assert work.trials.concurrency == 2 and work.soft.replicas == 1


def test_sweep_json_keeps_estimate_and_actual(tmp_path):
    from raykd.sweep.timing import StageClock

    (tmp_path / "sweep.json").write_text(json.dumps({"name": "x"}))
    estimate = SweepEstimate([StageEstimate("teacher", 0.0, "none"), StageEstimate("soft_targets", 10.0),
                              StageEstimate("transfer_sets", 0.0, "none"), StageEstimate("trials", 60.0)],
                             where="here", calibration_s=2.0)
    clock = StageClock(tmp_path / "cache", estimate)
    with clock.stage("trials"):
        pass
    clock.finish(tmp_path, echo=lambda _: None)
    meta = json.loads((tmp_path / "sweep.json").read_text())
    assert meta["name"] == "x" and meta["estimate"] == {"where": "here", "calibration_s": 2.0, "total_s": 70.0}
    assert meta["stages"]["trials"]["estimate"] == 60.0 and meta["stages"]["trials"]["actual"] >= 0.0
    assert (tmp_path / "stages.csv").read_text().splitlines()[0] == "stage,estimate_s,actual_s,ratio,status"
    clock.finish(tmp_path, echo=lambda _: None, resumed=True)
    assert len(json.loads((tmp_path / "sweep.json").read_text())["resumed_stages"]) == 1


def test_stage_times_never_fail_the_end_of_a_sweep(tmp_path):
    lines = []
    StageClock(tmp_path / "cache").finish(tmp_path / "no-such-sweep", echo=lines.append)
    assert len(lines) == 1 and lines[0].startswith("warning: stage times not recorded")


def test_calibration_times_every_workload_on_real_models():
    """Fine-tuning the base encoder, Tang's rules and a scratch generator: each gets a cost > 0."""
    import csv

    import pandas as pd

    from conftest import BASE, GLUE
    from raykd.methods.generation import transfer_requests
    from raykd.sweep.calibrate import CalibrationJob, calibrate

    frame = pd.read_csv(GLUE / "SST-2" / "train.tsv", sep="\t", quoting=csv.QUOTE_NONE, nrows=400)
    frame = frame.rename(columns={"sentence": "text_a"}).sample(120, random_state=0)
    generation = dict(transfer_requests({"gen_layers": 1, "gen_dim": 16, "gen_heads": 2, "multiple": 2.0}))
    job = CalibrationJob(frame=frame, teacher_path=str(BASE), max_length=32, num_labels=2, threads=1, fresh_head=True,
                         teacher_forward=32, teacher_train=8, generation=generation["generation"],
                         tang={"p_mask": 0.1, "p_pos": 0.1, "p_ng": 0.25, "n_iter": 3})
    m = calibrate(job)
    for cost in (m.teacher_forward, m.teacher_train, m.tang, m.generator_train, m.generator_sample):
        assert cost.per_call >= 0 and cost.per_unit >= 0 and cost.seconds(1, 100) > 0
    assert 0 < m.tang_rows <= 1  # at most one novel example per source example and pass
    assert m.tang.per_unit > 0  # warmed up: the tagger's lazy load does not hide the per-example part
    assert m.teacher_train.seconds(1, 256) > m.teacher_forward.seconds(1, 256)  # a step costs more than a forward
    assert m.threads == 1 and m.seconds > 0


@pytest.mark.integration  # reads two real tasks and checks two teachers (about 30 s)
def test_each_task_of_a_multi_task_space_builds_its_own_transfer_set(tmp_path):
    """Single-task methods in a multi-task space distil one student per task, each on its own task's set:
    the estimate plans a Tang build per task, costs each on its task's lengths, and calibrates on the
    task with the most tokens of work (RTE's long pairs, not SST-2's short sentences)."""
    from conftest import BASE, GLUE, TEACHER
    from raykd.config import parse_space
    from raykd.sweep.preflight import SweepOptions, preflight
    from raykd.sweep.workload import calibration_jobs, plan_work

    raw = {"tasks": ["sst2", "rte"], "data": {"glue_dir": str(GLUE), "train_limit": 64, "dev_limit": 16},
           "teacher": {"paths": {"sst2": str(TEACHER)}, "base": str(BASE), "fine_tune": True},
           "methods": {"vanilla": {"augment": "tang"}}, "students": {"bilstm": {}}, "budget": {"num_samples": 2}}
    pre = preflight(parse_space(raw), SweepOptions(storage=str(tmp_path / "runs"), echo=lambda _: None))
    work = plan_work(pre, {"CPU": 3.0, "GPU": 0.0})
    assert sorted(t.task for t in work.transfers) == ["rte", "sst2"]
    (kind,) = work.trials.kinds
    assert sorted(t.task for t, _ in kind.transfers) == ["rte", "sst2"]
    jobs = calibration_jobs(pre, work)
    rte = next(t for t in work.tasks if t.name == "rte")
    assert all(job.frame is rte.sample for job in jobs.values())
    m = _measured()
    estimate = predict(work, m)
    sets = _stage(estimate, "transfer_sets")
    assert sets.detail.count("tang") == 2
    # the pair task's set costs more to label than the sentence task's: each build uses its own lengths
    by_task = {t.task: t for t in work.transfers}
    tasks = {t.name: t for t in work.tasks}
    rte_s, _ = _build_s(replace(by_task["rte"], source_rows=100), tasks["rte"], m["transfer_sets"])
    sst_s, _ = _build_s(replace(by_task["sst2"], source_rows=100, iterations=by_task["rte"].iterations),
                        tasks["sst2"], m["transfer_sets"])
    assert rte_s > sst_s


def test_single_task_methods_in_a_multi_task_space_count_a_student_per_task():
    """A data-free trial in a two-task space trains two students; a shared-student (multitask) trial one;
    each task's soft-target run pays its own replica start and latency measurement."""
    m = _measured()
    two = [_task(), _task(name="rte")]
    free = TrialKind("zero_shot", "bilstm", 1.0, epochs=1, batch_size=64, data_free_steps=100, data_free_length=32)
    one_task = _stage(predict(_work(trials=1, concurrency=1, kinds=(free,)), m), "trials").seconds
    per_task = _stage(predict(_work(two, trials=1, concurrency=1, kinds=(replace(free, students=2),)), m),
                      "trials").seconds
    assert per_task - START == pytest.approx(2 * (one_task - START), rel=0.05)
    soft_one = _stage(predict(_work([_task(to_label={"train": 10})]), m), "soft_targets").seconds
    soft_two = _stage(predict(_work([_task(to_label={"train": 10}), _task(name="rte", to_label={"train": 10})]), m),
                      "soft_targets").seconds
    assert soft_two - soft_one == pytest.approx(_soft_fixed(m["soft_targets"]) - RAY_START_S, rel=0.05)


def test_tang_rows_follow_each_tasks_passes():
    """Novel rows are measured per pass, so a sentence task (20 passes) gets twice a pair task's (10)."""
    m = _measured()
    sentence = TransferWork("tang", {}, builds=1.0, source_rows=1000, iterations=20)
    pair = replace(sentence, iterations=10)
    assert "12,000 rows" in _stage(predict(_work(transfers=[sentence]), m), "transfer_sets").detail
    assert "6,000 rows" in _stage(predict(_work(transfers=[pair]), m), "transfer_sets").detail
