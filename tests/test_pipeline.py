"""Unit tests for the stages between data and Ray: encoding, batching, the teacher cache, the loop."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import GLUE, TEACHER
from raykd.data.encoding import EncodedSplit, encode_frame
from raykd.data.readers import read_glue
from raykd.data.tasks import get_task
from raykd.distill.batching import epoch_batches, to_tensors
from raykd.distill.checkpoint import load_checkpoint, save_checkpoint
from raykd.distill.loop import LoopSettings, LoopState, fit
from raykd.errors import NonFiniteLossError
from raykd.sweep.results import read_trials, record_from_result
from raykd.teachers.cache import cached_teacher_outputs, teacher_logits
from raykd.teachers.load import load_teacher, load_tokenizer

SST2 = get_task("sst2")


@pytest.fixture(scope="module")
def dev_frame():
    return read_glue(GLUE, SST2, "dev")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(TEACHER))


def test_encoding_round_trip(dev_frame, tokenizer, tmp_path):
    split = encode_frame(tokenizer, dev_frame.head(50), max_length=32)
    assert len(split) == 50 and split.lengths.max() <= 32
    first = tokenizer(dev_frame.text_a[0], truncation=True, max_length=32)["input_ids"]
    assert split.input_ids[split.offsets[0]:split.offsets[1]].tolist() == first
    batch = split.padded(np.array([3, 0, 7]), pad_id=0)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (3, split.lengths[[3, 0, 7]].max())
    assert batch["attention_mask"].sum(1).tolist() == split.lengths[[3, 0, 7]].tolist()
    split.save(tmp_path / "s.npz")
    again = EncodedSplit.load(tmp_path / "s.npz")
    assert np.array_equal(again.input_ids, split.input_ids) and again.teacher_logits is None


def test_pair_encoding_has_two_segments(tokenizer):
    frame = read_glue(GLUE, get_task("rte"), "dev").head(4)
    split = encode_frame(tokenizer, frame, max_length=128)
    types = split.token_type_ids[split.offsets[0]:split.offsets[1]]
    assert types[0] == 0 and types[-1] == 1 and set(types.tolist()) == {0, 1}


def test_epoch_batches_cover_every_example_once():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    batches = epoch_batches(lengths, 32, epoch=1, seed=0)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(1000))
    assert epoch_batches(lengths, 32, epoch=1, seed=0)[0].tolist() == batches[0].tolist()  # deterministic
    assert epoch_batches(lengths, 32, epoch=2, seed=0)[0].tolist() != batches[0].tolist()  # reshuffled
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_batches = np.array_split(np.random.default_rng(1).permutation(1000), len(batches))
    padded_random = sum(len(b) * lengths[b].max() for b in random_batches)
    assert padded < 0.75 * padded_random  # length bucketing saves padding


def test_epoch_batches_split_evenly_across_ranks():
    lengths = np.random.default_rng(0).integers(3, 60, size=1001)
    ranks = [epoch_batches(lengths, 16, epoch=1, seed=3, rank=r, world_size=3) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1
    flat = [np.concatenate(r) for r in ranks]
    assert not set(flat[0]) & set(flat[1]) and not set(flat[1]) & set(flat[2])


def test_teacher_cache_is_built_once_and_matches_the_teacher(dev_frame, tokenizer, tmp_path):
    frames = {"dev": dev_frame.head(96)}
    first = cached_teacher_outputs(str(TEACHER), frames, max_length=64, cache_dir=tmp_path, batch_size=32)
    again = cached_teacher_outputs(str(TEACHER), frames, max_length=64, cache_dir=tmp_path, batch_size=32)
    assert first["dev"].built and not again["dev"].built and first["dev"].key == again["dev"].key
    split = again["dev"].load()
    assert split.teacher_logits.shape == (96, 2)
    # other data or another max_length -> another entry
    other = cached_teacher_outputs(str(TEACHER), {"dev": dev_frame.head(95)}, max_length=64, cache_dir=tmp_path)
    longer = cached_teacher_outputs(str(TEACHER), frames, max_length=128, cache_dir=tmp_path)
    assert len({first["dev"].key, other["dev"].key, longer["dev"].key}) == 3
    # the cached logits are the teacher's, whatever the batching
    direct = teacher_logits(load_teacher(str(TEACHER)), split, tokenizer.pad_token_id, batch_size=7)
    assert np.allclose(direct, split.teacher_logits, atol=1e-4)
    accuracy = (split.teacher_logits.argmax(1) == split.labels).mean()
    assert accuracy > 0.8  # the teacher's dev accuracy is 0.8968
    meta = json.loads((first["dev"].path.parent / "meta.json").read_text())
    assert meta["rows"] == 96 and meta["max_length"] == 64


def _toy_split(n=64, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = rng.integers(5, 50, size=offsets[-1]).astype(np.int32)
    logits = rng.normal(size=(n, classes)).astype(np.float32)
    return EncodedSplit(ids, np.zeros(offsets[-1], np.int8), offsets, logits.argmax(1), logits)


class _Bag(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.EmbeddingBag(50, 2, mode="sum")

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.emb(input_ids, per_sample_weights=attention_mask.float())


def test_fit_reports_every_epoch_and_tracks_the_best():
    from raykd.methods.vanilla import VanillaKD

    split, reports = _toy_split(), []
    state = fit(_Bag(), VanillaKD("kl", 2.0, 0.0).objective, split, LoopSettings(epochs=3, batch_size=8, lr=0.05),
                evaluate=lambda m: {"accuracy": float(np.random.default_rng().random())}, primary="accuracy",
                report=lambda metrics, st: reports.append(dict(metrics)))
    assert [r["epoch"] for r in reports] == [1, 2, 3] and state.epoch == 3
    assert state.best_metric == max(r["accuracy"] for r in reports)
    assert all(math.isfinite(r["train_loss"]) and r["examples_per_s"] > 0 for r in reports)
    assert state.optimizer and state.scheduler


def test_fit_refuses_a_non_finite_loss():
    def objective(logits, batch):
        return logits.sum() * float("nan"), {}

    with pytest.raises(NonFiniteLossError, match="loss became nan at epoch 1, step 0"):
        fit(_Bag(), objective, _toy_split(), LoopSettings(epochs=1, batch_size=8, lr=0.1),
            evaluate=lambda m: {"accuracy": 0.5}, primary="accuracy", report=lambda *a: None)


def test_checkpoint_round_trip_resumes_state(tmp_path):
    from raykd.students import StudentContext, build_student, student_spec

    ctx = StudentContext(num_labels=2, is_pair=False, vocab_size=60, pad_token_id=0)
    params = {"embedding_dim": 8, "hidden_dim": 8, "embedding_init": "random"}
    model = build_student("bilstm", params, ctx)
    state = LoopState(epoch=2, best_metric=0.7, best_epoch=1, optimizer={"a": 1}, scheduler={"b": 2})
    save_checkpoint(tmp_path, model, student_spec("bilstm", params, ctx), state, {"accuracy": 0.7})
    loaded, again = load_checkpoint(tmp_path)
    batch = to_tensors(_toy_split(), np.arange(4), 0)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]),
                           loaded(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]))
    assert again == state


def test_records_from_tune_files(tmp_path):
    config = {"method": "vanilla", "student": "bilstm", "vanilla": {"kd_loss": "kl"}, "bilstm": {"hidden_dim": 64}}
    epochs = [{"epoch": 1, "metric": 0.7, "accuracy": 0.7, "best_metric": 0.7, "best_epoch": 1, "student_params": 10},
              {"epoch": 2, "metric": 0.6, "accuracy": 0.6, "best_metric": 0.7, "best_epoch": 1, "student_params": 10,
               "latency_ms": 0.5}]
    final = {**epochs[-1], "final": True, "checkpoint_dir": "/x/epoch_001"}
    done = record_from_result("a", config, epochs + [final], "accuracy")
    assert done.status == "TERMINATED" and done.metric == 0.7 and done.metrics == {"accuracy": 0.7}
    assert done.settings["bilstm/hidden_dim"] == 64 and done.epochs_done == 2 and done.latency_ms == 0.5
    assert record_from_result("b", config, epochs[:1], "accuracy").status == "RUNNING"
    failed = record_from_result("c", config, epochs[:1], "accuracy", error="ValueError: boom")
    assert failed.status == "ERROR" and failed.error == "ValueError: boom"
    # the same through Tune's folder layout, with a result line cut short by a kill
    folder = tmp_path / "tune" / "trial-d"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(config))
    (folder / "result.json").write_text(json.dumps(epochs[0]) + "\n" + json.dumps(epochs[1])[:20])
    (records,) = read_trials(tmp_path / "tune", "accuracy")
    assert records.trial_id == "d" and records.status == "RUNNING" and records.epochs_done == 1


def test_default_max_concurrent():
    from raykd.config import ResourcesConfig
    from raykd.sweep.run import default_max_concurrent, startup_trials

    class Space:
        resources = ResourcesConfig(num_workers=2, cpus_per_worker=1)

    assert default_max_concurrent({"CPU": 9}, Space) == 4  # a local instance: 8 cores + 1 for drivers
    assert default_max_concurrent({"CPU": 8}, Space) == 3  # drivers need a little too
    assert default_max_concurrent({"CPU": 1}, Space) == 1
    Space.resources = ResourcesConfig(num_workers=1, cpus_per_worker=2, gpus_per_worker=0.5)
    assert default_max_concurrent({"CPU": 16, "GPU": 1}, Space) == 2
    assert [startup_trials(n) for n in (2, 8, 40)] == [2, 4, 10]
