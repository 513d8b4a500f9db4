"""Multi-task distillation (MKD): tied student, parameter counts, attention pooling, task schedule, loop."""

import copy
import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import pad_batch, token_batch

from raykd.data.encoding import EncodedSplit
from raykd.distill.loop import LoopSettings
from raykd.distill.multitask import fit_multitask, task_schedule
from raykd.errors import RaykdInputError
from raykd.methods.vanilla import make_method
from raykd.students import StudentContext, build_student
from raykd.students.multitask import build_multitask_student, multitask_param_counts

VOCAB, PAD = 50, 0
TINY = {
    "bilstm": {"embedding_dim": 8, "hidden_dim": 8, "mlp_dim": 8, "embedding_init": "random"},
    "transformer": {"num_layers": 1, "hidden_size": 16, "num_heads": 2, "ffn_dim": 32, "init": "random"},
}


def _ctx(is_pair=False, num_labels=2, vocab_size=VOCAB, pad_token_id=PAD):
    return StudentContext(num_labels=num_labels, is_pair=is_pair, vocab_size=vocab_size,
                          pad_token_id=pad_token_id, max_length=16)


CONTEXTS = {"single": _ctx(), "pair": _ctx(is_pair=True, num_labels=3), "score": _ctx(num_labels=1)}


# the student


@pytest.mark.parametrize("family", ["bilstm", "transformer"])
def test_tied_encoder_and_counts(family):
    model = build_multitask_student(family, TINY[family], CONTEXTS, init_from_teacher=False, seed=1)
    assert model.task_names == ["single", "pair", "score"]
    first = model.task_model("single")
    for task in model.task_names[1:]:
        for name in model.shared_names:
            assert getattr(model.task_model(task), name) is getattr(first, name)
    assert model.shared_names == {"bilstm": ("embedding", "lstm"), "transformer": ("bert",)}[family]
    counts = multitask_param_counts(model)
    assert sum(p.numel() for p in model.parameters()) == counts["total"]
    heads = {t: counts["per_task"][t] - counts["shared"] for t in model.task_names}
    assert all(h > 0 for h in heads.values())
    assert counts["total"] == counts["shared"] + sum(heads.values())
    for task in model.task_names:  # a per-task student counts like a standalone one
        alone = build_student(family, TINY[family], CONTEXTS[task], init_from_teacher=False)
        assert counts["per_task"][task] == sum(p.numel() for p in alone.parameters())
    embedding = VOCAB * (8 if family == "bilstm" else 16)
    assert counts["per_task"]["single"] - counts["per_task_non_embedding"]["single"] >= embedding
    assert counts["total"] - counts["total_non_embedding"] == (
        counts["per_task"]["single"] - counts["per_task_non_embedding"]["single"])


@pytest.mark.parametrize("family", ["bilstm", "transformer"])
def test_forward_is_the_task_model(family):
    model = build_multitask_student(family, TINY[family], CONTEXTS, init_from_teacher=False).eval()
    for task, ctx in CONTEXTS.items():
        batch = token_batch([7, 5, 4], is_pair=ctx.is_pair)
        with torch.no_grad():
            logits = model(task, *batch)
            assert logits.shape == (3, ctx.num_labels)
            torch.testing.assert_close(logits, model.task_model(task)(*batch), rtol=0, atol=0)
    with pytest.raises(KeyError, match="no task 'nope'"):
        model.task_model("nope")


def test_gradient_of_one_task_reaches_the_shared_encoder_only_with_its_head():
    model = build_multitask_student("bilstm", TINY["bilstm"], CONTEXTS, init_from_teacher=False)
    model("score", *token_batch([6, 3])).sum().backward()
    assert model.task_model("single").lstm.weight_ih_l0.grad is not None
    assert model.task_model("score").head[0].weight.grad is not None
    assert model.task_model("single").head[0].weight.grad is None


def test_vocabulary_mismatch_is_refused():
    with pytest.raises(RaykdInputError, match="task single has vocab_size 50, task other has 60"):
        build_multitask_student("bilstm", TINY["bilstm"], {"single": _ctx(), "other": _ctx(vocab_size=60)})
    with pytest.raises(RaykdInputError, match="pad_token_id"):
        build_multitask_student("bilstm", TINY["bilstm"], {"single": _ctx(), "other": _ctx(pad_token_id=1)})
    with pytest.raises(RaykdInputError, match="no tasks"):
        build_multitask_student("bilstm", TINY["bilstm"], {})


def test_attention_pooling_shared_and_padding_invariant():
    params = dict(TINY["bilstm"], pooling="attention")
    model = build_multitask_student("bilstm", params, CONTEXTS, init_from_teacher=False).eval()
    assert "attention" in model.shared_names
    assert model.task_model("pair").attention is model.task_model("single").attention
    for task, ctx in CONTEXTS.items():
        batch = token_batch([9, 5, 4], is_pair=ctx.is_pair)
        with torch.no_grad():
            torch.testing.assert_close(model(task, *batch), model(task, *pad_batch(batch, 7)), rtol=0, atol=1e-6)


def test_attention_pooling_only_when_chosen():
    plain = build_student("bilstm", TINY["bilstm"], _ctx())
    attentive = build_student("bilstm", dict(TINY["bilstm"], pooling="attention"), _ctx())
    assert not hasattr(plain, "attention") and not any("attention" in k for k in plain.state_dict())
    assert isinstance(attentive.attention, torch.nn.Linear) and attentive.attention.in_features == 16
    extra = sum(p.numel() for p in attentive.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 16 + 1


# the schedule


def test_proportional_schedule_is_every_batch_once_in_epoch_order():
    sizes, bs = {"a": 100, "b": 33, "c": 8}, 8
    one = task_schedule(sizes, bs, sampling="proportional", tau=1.0, epoch=1, seed=0)
    assert Counter(one) == {t: math.ceil(n / bs) for t, n in sizes.items()}
    assert one == task_schedule(sizes, bs, sampling="proportional", tau=1.0, epoch=1, seed=0)
    two = task_schedule(sizes, bs, sampling="proportional", tau=1.0, epoch=2, seed=0)
    assert Counter(two) == Counter(one) and two != one


def test_temperature_schedule_flattens_with_tau():
    sizes = {"big": 9000, "small": 1000}
    steps = {tau: Counter(task_schedule(sizes, 1, sampling="temperature", tau=tau, epoch=1, seed=0))
             for tau in (1.0, 1e6)}
    assert sum(steps[1.0].values()) == 10000
    assert abs(steps[1.0]["big"] / 10000 - 0.9) < 0.02
    assert abs(steps[1e6]["big"] / 10000 - 0.5) < 0.03


@pytest.mark.parametrize("kwargs, match", [
    ({"sampling": "uniform"}, "sampling must be one of"),
    ({"tau": 0.0}, "tau must be > 0"),
    ({"sizes": {}}, "at least one task"),
])
def test_schedule_rejects_bad_settings(kwargs, match):
    args = {"sizes": {"a": 4}, "sampling": "temperature", "tau": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        task_schedule(args.pop("sizes"), 2, epoch=1, seed=0, **args)


# the loop


def _split(n, *, marker, is_pair, seed):
    """Examples whose label says whether token ``marker`` occurs (in segment b for pairs)."""
    rng = np.random.default_rng(seed)
    ids, types, offsets, labels = [], [], [0], []
    for _ in range(n):
        label = int(rng.integers(2))
        a, b = rng.integers(10, VOCAB, int(rng.integers(3, 7))), rng.integers(10, VOCAB, int(rng.integers(2, 6)))
        if label:
            b[rng.integers(len(b))] = marker
        row = [1, *a, 2, *b, 2] if is_pair else [1, *a, *b, 2]
        ids += row
        types += [0] * (len(a) + 2) + [1] * (len(b) + 1) if is_pair else [0] * len(row)
        offsets.append(len(ids))
        labels.append(label)
    labels = np.asarray(labels)
    logits = np.stack([-3.0 * (2 * labels - 1), 3.0 * (2 * labels - 1)], axis=1).astype(np.float32)
    return EncodedSplit(input_ids=np.asarray(ids, np.int32), token_type_ids=np.asarray(types, np.int8),
                        offsets=np.asarray(offsets, np.int64), labels=labels, teacher_logits=logits)


TASKS = {"single": {"marker": 5, "is_pair": False}, "pair": {"marker": 7, "is_pair": True}}


@pytest.fixture(scope="module")
def data():
    return ({t: _split(160 if t == "single" else 96, seed=i, **kw) for i, (t, kw) in enumerate(TASKS.items())},
            {t: _split(100, seed=10 + i, **kw) for i, (t, kw) in enumerate(TASKS.items())})


def _setup(data, epochs=4):
    trains, devs = data
    contexts = {t: _ctx(is_pair=kw["is_pair"]) for t, kw in TASKS.items()}
    params = dict(TINY["bilstm"], hidden_dim=16, mlp_dim=16, dropout=0.0)
    model = build_multitask_student("bilstm", params, contexts, init_from_teacher=False, seed=0)
    method = make_method({"kd_loss": "mse", "alpha": 0.0}, SimpleNamespace(is_regression=False))
    objectives = {t: method.objective for t in TASKS}
    settings = LoopSettings(epochs=epochs, batch_size=16, lr=2e-2, warmup_ratio=0.0, seed=0)

    def evaluate(m):
        m.eval()
        metrics = {}
        with torch.no_grad():
            for task, dev in devs.items():
                batch = dev.padded(np.arange(len(dev)), PAD)
                inputs = (torch.from_numpy(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
                logits = m(task, *inputs)
                metrics[f"{task}/accuracy"] = float((logits.argmax(-1).numpy() == dev.labels).mean())
        metrics["accuracy"] = float(np.mean(list(metrics.values())))
        return metrics

    return model, objectives, trains, settings, evaluate


def test_fit_multitask_learns_both_tasks_and_reports_each_epoch(data):
    model, objectives, trains, settings, evaluate = _setup(data)
    reports, steps = [], []
    state = fit_multitask(model, objectives, trains, settings, evaluate=evaluate, primary="accuracy",
                          report=lambda m, s: reports.append(m), on_step=steps.append)
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4]
    assert all(r["steps/single"] == 10 and r["steps/pair"] == 6 for r in reports)
    assert sum(steps) == 4 * (160 + 96)
    best = max(reports, key=lambda r: r["accuracy"])
    assert reports[-1]["best_epoch"] == state.best_epoch == best["epoch"]
    assert reports[-1]["best_metric"] == best["accuracy"]
    assert best["single/accuracy"] > 0.75 and best["pair/accuracy"] > 0.75, reports
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]


def test_fit_multitask_temperature_sampling_runs_extra_passes(data):
    model, objectives, trains, settings, evaluate = _setup(data, epochs=1)
    reports = []
    fit_multitask(model, objectives, trains, settings, evaluate=evaluate, primary="accuracy",
                  report=lambda m, s: reports.append(m), sampling="temperature", tau=1e6)
    assert reports[0]["steps/single"] + reports[0]["steps/pair"] == 16
    assert reports[0]["steps/pair"] > 6  # more than one pass of the small task (seeded: 9 here)


def test_fit_multitask_resumes_at_the_next_epoch(data):
    model, objectives, trains, settings, evaluate = _setup(data, epochs=2)
    full, saved = [], {}

    def report(metrics, state):
        full.append(metrics)
        if metrics["epoch"] == 1:
            saved["state"], saved["weights"] = copy.deepcopy(state), copy.deepcopy(model.state_dict())

    fit_multitask(model, objectives, trains, settings, evaluate=evaluate, primary="accuracy", report=report)
    resumed_model, *_ = _setup(data, epochs=2)
    resumed_model.load_state_dict(saved["weights"])
    resumed = []
    state = fit_multitask(resumed_model, objectives, trains, settings, evaluate=evaluate, primary="accuracy",
                          report=lambda m, s: resumed.append(m), state=saved["state"])
    assert [r["epoch"] for r in resumed] == [2] and state.epoch == 2
    assert resumed[0]["train_loss"] == pytest.approx(full[1]["train_loss"], rel=1e-5)
    assert resumed[0]["best_epoch"] == full[1]["best_epoch"]


def test_task_batches_never_repeat_within_a_pass():
    from raykd.distill.multitask import _task_batches

    stream = _task_batches(np.full(20, 5), 8, epoch=1, seed=0)  # equal lengths: batches are shuffles
    passes = [[next(stream) for _ in range(3)] for _ in range(3)]
    for batches in passes:
        assert sorted(np.concatenate(batches).tolist()) == list(range(20))
    assert any(not np.array_equal(a, b) for a, b in zip(passes[0], passes[1]))
