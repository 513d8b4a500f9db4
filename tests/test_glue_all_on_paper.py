"""benchmarks/glue_all_on_paper.py: its full-size GLUE folder reads back through raykd's readers, its stated
cluster resolves to the stages it describes, and the GPU scaling touches only the GPU workloads."""

import importlib.util
import sys

import pytest
from conftest import GLUE, REPO


@pytest.fixture(scope="module")
def paper():
    spec = importlib.util.spec_from_file_location("glue_all_on_paper", REPO / "benchmarks" / "glue_all_on_paper.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_glue_dir_reads_back_with_valid_labels(paper, tmp_path, monkeypatch):
    from raykd.data.readers import read_glue
    from raykd.data.tasks import get_task

    full = paper.GLUE_ROWS
    assert full["mnli"]["train"] == 392_702 and full["qqp"]["dev"] == 40_430
    small = {task: {split: (rows if task in paper._LOCAL else 50) for split, rows in splits.items()}
             for task, splits in paper.GLUE_ROWS.items()}
    monkeypatch.setattr(paper, "GLUE_ROWS", small)
    sources = paper.write_glue_dir(tmp_path)
    assert set(sources) == set(small)
    for name, splits in small.items():
        task = get_task(name)
        for split, rows in splits.items():
            frame = read_glue(tmp_path, task, split)
            assert len(frame) == rows, (name, split)
            assert ("text_b" in frame) == task.is_pair
            if not task.is_regression:
                assert frame["label"].between(0, task.num_labels - 1).all()
    labels = read_glue(tmp_path, get_task("mnli"), "train")["label"]
    assert set(labels) == {0, 1, 2}
    assert len(read_glue(GLUE, get_task("cola"), "dev")) == full["cola"]["dev"]


def test_stated_cluster_resolves_to_one_unit_per_gpu_node(paper):
    from raykd.config import load_space
    from raykd.stages import resolve_stages

    cluster, nodes = paper.stated_cluster(3)
    assert cluster["GPU"] == 3 and cluster["CPU"] == 24 and nodes[0]["CPU"] == 0 and len(nodes) == 4
    plans = resolve_stages(load_space(paper.SPACE), cluster, nodes)
    assert plans["soft_targets"].replicas == 3 and plans["teacher"].gpus == 1


def test_gpu_scaling_divides_gpu_work_and_keeps_cpu_work(paper):
    from raykd.sweep.calibrate import Cost, Measurements

    m = Measurements(seconds=1.0, threads=2, device="cpu", tokenize=Cost(0.0, 1e-4), teacher_load=2.0,
                     teacher_forward=Cost(0.5, 1e-3), teacher_train=Cost(0.0, 3e-3),
                     students={"bilstm": Cost(0.2, 1e-4)}, student_eval={"bilstm": Cost(0.0, 4e-5)},
                     tang=Cost(0.1, 1e-3), generator_sample=Cost(0.3, 2e-3))
    g = paper.on_gpu(m, 100.0)
    assert g.teacher_forward.per_unit == pytest.approx(1e-5) and g.teacher_forward.per_call == pytest.approx(0.005)
    assert g.teacher_train.per_call == paper.GPU_FLOOR_S["teacher_train"]  # a 0 per-batch cost gets the floor
    assert g.students["bilstm"].per_unit == pytest.approx(1e-6) and g.student_eval["bilstm"].per_unit == pytest.approx(4e-7)
    assert g.generator_sample == Cost(0.3, 2e-5)
    assert (g.tokenize, g.tang, g.teacher_load, g.generator_train) == (m.tokenize, m.tang, 2.0, None)
    # timed at 100 tokens a batch: the CPU seconds per token of those batches, whole, / 100, and the floor per batch
    t = paper.on_gpu(m, 100.0, {"teacher_forward": 100.0, "students": {"bilstm": 50.0}})
    assert t.teacher_forward == Cost(paper.GPU_FLOOR_S["teacher_forward"], pytest.approx((0.5 / 100 + 1e-3) / 100))
    assert t.students["bilstm"].per_unit == pytest.approx((0.2 / 50 + 1e-4) / 100)
    jobs = {"soft_targets": type("Job", (), {"gpu": True})(), "trials": type("Job", (), {"gpu": False})()}
    stated = paper.stated_measurements({"soft_targets": m, "trials": m}, jobs, {"soft_targets": 100.0, "trials": 5.0})
    assert stated["trials"] is m and stated["soft_targets"].teacher_forward.per_unit == pytest.approx(1e-5)
