"""Unit tier: the ``stages:`` section, its defaults from the cluster, sharded splits, and a teacher
fine-tuning run that continues from its last epoch's checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import BASE, GLUE, tiny_space_raw

from raykd.config import parse_space
from raykd.data.encoding import EncodedSplit
from raykd.data.shards import ShardWriter, is_sharded, iter_shards, load_split, shard_rows_of
from raykd.errors import RaykdInputError
from raykd.stages import resolve_stages


def _space(stages: dict | None = None, **changes):
    raw = tiny_space_raw(changes)
    if stages is not None:
        raw["stages"] = stages
    return parse_space(raw)


def test_defaults_follow_the_cluster():
    space = _space()
    cpu = resolve_stages(space, {"CPU": 3.0})
    assert cpu["teacher"].gpus == 0 and cpu["soft_targets"].gpus == 0 and cpu["transfer_sets"].gpus == 0
    assert cpu["soft_targets"].replicas == 1 and cpu["soft_targets"].cpus == 3.0  # one node's worth of CPUs
    assert cpu["soft_targets"].batch_size == space.teacher.batch_size
    gpu = resolve_stages(space, {"CPU": 64.0, "GPU": 8.0}, nodes=[{"CPU": 32.0, "GPU": 4.0}] * 2)
    assert gpu["teacher"].gpus == 1 and gpu["transfer_sets"].gpus == 1
    assert gpu["soft_targets"].replicas == 8 and gpu["soft_targets"].gpus == 1 and gpu["soft_targets"].cpus == 8
    two_nodes = resolve_stages(space, {"CPU": 4.0}, nodes=[{"CPU": 2.0}, {"CPU": 2.0}, {"CPU": 0.0}])
    assert two_nodes["soft_targets"].replicas == 2 and two_nodes["soft_targets"].cpus == 2  # the empty head is not a node


def test_given_values_win_and_become_ray_options():
    space = _space({"teacher": {"gpus": 0.5, "cpus": 2, "memory_gb": 4, "resources": {"raykd_gpu": 1}},
                    "soft_targets": {"replicas": 3, "gpus": 0.25, "cpus": 1, "batch_size": 512}})
    plans = resolve_stages(space, {"CPU": 8.0, "GPU": 1.0})
    assert plans["teacher"].ray_options() == {"num_cpus": 2, "num_gpus": 0.5, "memory": 4 << 30,
                                              "resources": {"raykd_gpu": 1.0}}
    assert (plans["soft_targets"].replicas, plans["soft_targets"].batch_size) == (3, 512)
    assert "0.5 GPU" in plans["teacher"].describe() and "4 GiB" in plans["teacher"].describe()


@pytest.mark.parametrize("stages, fragment", [
    ({"teacher": {"replicas": 2}}, "only stages.soft_targets has replicas"),
    ({"transfer_sets": {"batch_size": 2}}, "only stages.soft_targets has batch_size"),
    ({"soft_targets": {"replicas": 0}}, "stages.soft_targets.replicas must be an integer >= 1"),
    ({"soft_targets": {"gpus": -1}}, "stages.soft_targets.gpus must be a number >= 0"),
    ({"teacher": {"cpus": 0}}, "stages.teacher.cpus must be a number > 0"),
    ({"teacher": {"resources": {"GPU": 1}}}, "set CPUs, GPUs and memory with cpus / gpus / memory_gb"),
    ({"trials": {}}, "unknown key 'stages.trials'"),
    ([1, 2], "stages must be a mapping"),
])
def test_bad_stage_settings_are_refused(stages, fragment):
    with pytest.raises(RaykdInputError) as error:
        _space(stages)
    assert fragment in str(error.value)


def _split(n: int, seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 9, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return EncodedSplit(rng.integers(0, 100, offsets[-1]).astype(np.int32), np.zeros(offsets[-1], np.int8),
                        offsets, rng.integers(0, 2, n), rng.normal(size=(n, 2)).astype(np.float32))


@pytest.mark.parametrize("shard_rows, chunks", [(7, [5, 5, 13, 1]), (100, [24]), (1, [3, 3])])
def test_shard_writer_round_trips_in_order(tmp_path, shard_rows, chunks):
    whole = _split(sum(chunks))
    writer = ShardWriter(tmp_path / "split", shard_rows)
    start = 0
    for n in chunks:
        writer.add(_rows(whole, start, start + n))
        start += n
    assert not is_sharded(tmp_path / "split")  # no index before close: an unfinished folder
    writer.close()
    sizes = shard_rows_of(tmp_path / "split")
    assert sum(sizes) == len(whole) and max(sizes) <= shard_rows and all(s == shard_rows for s in sizes[:-1])
    back = load_split(tmp_path / "split")
    assert np.array_equal(back.input_ids, whole.input_ids) and np.array_equal(back.offsets, whole.offsets)
    assert np.array_equal(back.labels, whole.labels) and np.array_equal(back.teacher_logits, whole.teacher_logits)
    assert sum(len(p) for p in iter_shards(tmp_path / "split")) == len(whole)
    assert len(EncodedSplit.load(tmp_path / "split")) == len(whole)


def _rows(split: EncodedSplit, lo: int, hi: int) -> EncodedSplit:
    a, b = int(split.offsets[lo]), int(split.offsets[hi])
    return EncodedSplit(split.input_ids[a:b], split.token_type_ids[a:b], split.offsets[lo:hi + 1] - a,
                        split.labels[lo:hi], split.teacher_logits[lo:hi])


def test_shard_size_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        ShardWriter(tmp_path, 0)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A 2-layer, 32-wide BERT encoder with the real MiniLM tokenizer: a base to fine-tune in seconds."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-base")
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class _Crash(RuntimeError):
    pass


def test_a_restarted_fine_tuning_run_continues_from_its_last_epoch(tiny_base, tmp_path):
    """An interrupted run resumes after its last finished epoch and ends with the weights of an unbroken run."""
    from safetensors.torch import load_file

    from raykd.data.readers import read_glue
    from raykd.data.tasks import get_task
    from raykd.teachers.finetune import FineTuneSettings, fine_tune

    task = get_task("sst2")
    frames = {"train": read_glue(GLUE, task, "train").iloc[:96], "dev": read_glue(GLUE, task, "dev").iloc[:48]}
    settings = FineTuneSettings(epochs=3, lr=1e-3, batch_size=16, max_length=32)
    steps = 0
    steps_per_epoch = 96 // 16

    def crash_in_epoch_three(description, total):
        def advance(n):
            nonlocal steps
            steps += 1
            if steps == 2 * steps_per_epoch + 2:
                raise _Crash("node lost")
        return advance

    with pytest.raises(_Crash):
        fine_tune(task, str(tiny_base), tmp_path / "broken", frames, settings, progress=crash_in_epoch_three,
                  resume_dir=tmp_path / "partial")
    import json
    assert [m["epoch"] for m in json.loads((tmp_path / "partial" / "history.json").read_text())] == [1, 2]
    left = []
    resumed = fine_tune(task, str(tiny_base), tmp_path / "resumed", frames, settings,
                        progress=lambda d, total: left.append(total) or (lambda n: None),
                        resume_dir=tmp_path / "partial")
    assert left == [96]  # one epoch of 96 examples left to run
    unbroken = fine_tune(task, str(tiny_base), tmp_path / "unbroken", frames, settings)
    assert resumed == pytest.approx(unbroken)
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("resumed", "unbroken"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    card = json.loads((tmp_path / "resumed" / "training_card.json").read_text())
    assert card["epochs"] == 3 and set(card["dev_metrics"]) == {"accuracy"}


def test_units_that_fit_no_node_are_named_with_the_biggest_node():
    """A g5.2xlarge gives Ray about 21 GiB: a 24 GiB teacher task fits none of them; 16 GiB fits."""
    from raykd.stages import GIB, StagePlan, unfit_units

    nodes = [{"CPU": 0.0, "memory": 8 * GIB}] + [{"CPU": 8.0, "GPU": 1.0, "memory": 21.3 * GIB}] * 2
    plans = {"teacher": StagePlan(gpus=1.0, cpus=8.0, memory_gb=24.0),
             "soft_targets": StagePlan(gpus=1.0, cpus=4.0, memory_gb=8.0, replicas=2, batch_size=64),
             "transfer_sets": StagePlan(gpus=2.0, cpus=8.0, memory_gb=16.0)}
    lines = unfit_units(plans, nodes)
    assert len(lines) == 2
    assert lines[0].startswith("stages.teacher asks for 1 GPU, 8 CPU, 24 GiB") and "21.3 GiB of Ray memory" in lines[0]
    assert lines[1].startswith("stages.transfer_sets asks for 2 GPU")
    assert unfit_units({"teacher": StagePlan(gpus=1.0, cpus=8.0, memory_gb=16.0)}, nodes) == []
