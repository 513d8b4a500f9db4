"""The loop state in a checkpoint is tensors (safetensors) plus JSON, and is read back without pickle.

Resuming must continue exactly where the run stopped (AdamW moments, the warm-up schedule, a
data-free trainer's generator, bank and random streams), and a checkpoint folder, which a sweep
folder shared with others may hold, must never be unpickled.
"""

import json
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from conftest import token_batch
from raykd.distill.checkpoint import (LEGACY_TRAIN_STATE, TRAIN_STATE_JSON, TRAIN_STATE_TENSORS, load_checkpoint,
                                      save_checkpoint)
from raykd.distill.loop import LoopSettings, LoopState, build_optimiser, optimiser_step
from raykd.errors import RaykdInputError
from raykd.students import StudentContext, build_student, student_spec

CTX = StudentContext(num_labels=2, is_pair=False, vocab_size=60, pad_token_id=0)
PARAMS = {"embedding_dim": 8, "hidden_dim": 8, "embedding_init": "random", "dropout": 0.0}


def _student():
    torch.manual_seed(0)
    return build_student("bilstm", PARAMS, CTX)


def _round_trip(tmp_path, model, state: LoopState):
    """Save ``state`` with ``model`` as a checkpoint folder and load it back: ``(model, state)``."""
    folder = save_checkpoint(tmp_path / "ckpt", model, student_spec("bilstm", PARAMS, CTX), state, {"accuracy": 0.5})
    assert not (folder / LEGACY_TRAIN_STATE).exists()
    text = (folder / TRAIN_STATE_JSON).read_text()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    return load_checkpoint(folder)


def _same(a, b) -> bool:
    """Deep equality that also checks types (tuple vs list, int vs bool, int vs str keys), dtypes and NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(type(k) is type(j) for k, j in zip(a, b)) and all(
            _same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


BATCHES = [token_batch([3 + (i + j) % 5 for j in range(4)], vocab=60) for i in range(4)]


def _loss(model, step):
    logits = model(*BATCHES[step % len(BATCHES)])
    return torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1, 0]))


def test_adamw_and_warmup_schedule_resume_exactly_as_an_uninterrupted_run(tmp_path):
    settings = LoopSettings(epochs=1, batch_size=4, lr=0.05, warmup_ratio=0.5)
    total, stop = 8, 3

    def run(model, optimizer, scheduler, steps):
        for step in steps:
            optimiser_step(model, _loss(model, step), optimizer, scheduler, 1.0, epoch=1, step=step)

    straight = _student().train()
    run(straight, *build_optimiser(straight, settings, total, LoopState()), range(total))

    first = _student().train()
    optimizer, scheduler = build_optimiser(first, settings, total, LoopState())
    run(first, optimizer, scheduler, range(stop))
    state = LoopState(epoch=1, best_metric=0.5, best_epoch=1, optimizer=optimizer.state_dict(),
                      scheduler=scheduler.state_dict())
    resumed, again = _round_trip(tmp_path, first, state)
    assert _same(again.optimizer, state.optimizer) and _same(again.scheduler, state.scheduler)
    assert all(isinstance(key, int) for key in again.optimizer["state"])  # param ids, as AdamW needs them
    resumed.train()
    optimizer, scheduler = build_optimiser(resumed, settings, total, again)
    assert scheduler.get_last_lr() == state.scheduler["_last_lr"]
    run(resumed, optimizer, scheduler, range(stop, total))
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name  # bit for bit, not just close


def test_best_metric_minus_inf_and_every_kind_of_value_round_trip(tmp_path):
    metadata = OrderedDict({"": {"version": 1}})
    module_state = OrderedDict(weight=torch.randn(2, 3), steps=torch.tensor(3))
    module_state._metadata = metadata
    extra = {
        "floats": [0.5, math.inf, -math.inf, math.nan, -0.0], "ints": [0, -7, 2**64 + 1, -(2**127)],
        "flags": (True, False, None), "text": "a\nb \"quoted\" $x", "nested": [[1, (2.5, "x")], {}],
        "keys": {1: "int", "1": "str", (0, 1): "tuple", 2.5: "float", None: "none"}, "$literal": {"$tensor": "not a tensor"},
        "tensors": [torch.arange(6, dtype=torch.int64).reshape(2, 3), torch.tensor([True, False]),
                    torch.tensor(1.5, dtype=torch.float16), torch.randn(4)[::2], torch.zeros(0, 3)],
        "arrays": [np.arange(5, dtype=np.uint32), np.ones((2, 2), np.float64).T, np.float32(2.5), np.int64(-3)],
        "module": module_state, "samples": "generated text",
    }
    state = LoopState(extra=extra)  # epoch 0, best_metric -inf: the state before any epoch
    _, again = _round_trip(tmp_path, _student(), state)
    assert again.best_metric == -math.inf and again.epoch == 0 and again.best_epoch == 0
    assert _same(again.extra, extra)
    assert again.extra["module"]._metadata == metadata  # module versions for load_state_dict
    assert isinstance(again.extra["arrays"][2], np.float32)


def test_random_streams_continue_with_the_same_numbers(tmp_path):
    numpy_rngs = [np.random.default_rng(7), np.random.Generator(np.random.MT19937(7)),
                  np.random.Generator(np.random.Philox(7))]
    for rng in numpy_rngs:
        rng.random(3)
    torch_rng = torch.Generator().manual_seed(7)
    torch.rand(5, generator=torch_rng)
    extra = {"trainer": {"rng": torch_rng.get_state(), "numpy": [rng.bit_generator.state for rng in numpy_rngs]}}
    _, again = _round_trip(tmp_path, _student(), LoopState(extra=extra))
    restored = torch.Generator()
    restored.set_state(again.extra["trainer"]["rng"])
    assert torch.equal(torch.rand(5, generator=restored), torch.rand(5, generator=torch_rng))
    for rng, saved in zip(numpy_rngs, again.extra["trainer"]["numpy"]):
        fresh = np.random.Generator(type(rng.bit_generator)())
        fresh.bit_generator.state = saved
        assert np.array_equal(fresh.random(4), rng.random(4))
    pcg = json.loads((tmp_path / "ckpt" / TRAIN_STATE_JSON).read_text())["tree"]["extra"]["trainer"]["numpy"][0]
    assert isinstance(pcg["state"]["state"], dict)  # a 128-bit int, kept as digits: any JSON reader keeps it


@pytest.mark.parametrize("method", ["zero_shot", "random_tokens", "as_dfd"])
def test_data_free_trainer_state_resumes_the_same_stream(tmp_path, method):
    from raykd.methods import as_dfd, random_tokens, zero_shot
    from test_zero_shot import settings, tiny_env, tiny_student

    env, student = tiny_env(), tiny_student()
    build = {"zero_shot": lambda: zero_shot.make_trainer(settings(), env, student),
             "random_tokens": lambda: random_tokens.make_trainer({"kd_loss": "kl", "gen_length": 6}, env, student),
             "as_dfd": lambda: as_dfd.make_trainer({"bank_per_class": 4, "bank_steps": 2, "gen_length": 6,
                                                    "adv_steps": 1}, env, student)}[method]
    trainer = build()
    torch.manual_seed(1)
    trainer.generator_steps(student, 0)
    state = LoopState(epoch=1, extra={"trainer": trainer.state_dict(), "samples": "t5 t6 t7"})
    _, again = _round_trip(tmp_path, _student(), state)
    assert _same(again.extra, state.extra)
    fresh = build()
    fresh.load_state_dict(again.extra["trainer"])
    for name, module in trainer.student_modules.items():  # the loop restores these with the student
        fresh.student_modules[name].load_state_dict(module.state_dict())
    for one in (trainer, fresh):
        torch.manual_seed(2)
        one.generator_steps(student, 1)
    assert _same(fresh.state_dict(), trainer.state_dict())  # same updates, same random draws
    if method == "zero_shot":
        assert np.array_equal(fresh.rng.random(3), trainer.rng.random(3))
    if method == "random_tokens":
        assert all(torch.equal(a, b) for a, b in zip(fresh.sample(4), trainer.sample(4)))


class _Payload:
    """Unpickling this creates ``path``: proof that a loader ran code from the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("planted", [LEGACY_TRAIN_STATE, TRAIN_STATE_JSON, TRAIN_STATE_TENSORS])
def test_a_planted_pickle_is_refused_and_never_run(tmp_path, planted):
    proof = tmp_path / "unpickling-runs-code"
    pickle.loads(pickle.dumps(_Payload(proof)))
    assert proof.exists()  # the payload is live: loading it with pickle would leave this file

    marker = tmp_path / "marker"
    folder = save_checkpoint(tmp_path / "ckpt", _student(), student_spec("bilstm", PARAMS, CTX), LoopState(), {})
    if planted == LEGACY_TRAIN_STATE:  # an old-style folder: only the pickled train_state.pt
        (folder / TRAIN_STATE_JSON).unlink()
        (folder / TRAIN_STATE_TENSORS).unlink()
    (folder / planted).write_bytes(pickle.dumps({"epoch": 1, "payload": _Payload(marker)}))
    with pytest.raises(RaykdInputError, match="pickled training state" if planted == LEGACY_TRAIN_STATE else
                       "not a readable loop state"):
        load_checkpoint(folder)
    assert not marker.exists()


def test_a_stray_train_state_pt_next_to_the_new_files_is_ignored(tmp_path):
    marker = tmp_path / "marker"
    folder = save_checkpoint(tmp_path / "ckpt", _student(), student_spec("bilstm", PARAMS, CTX),
                             LoopState(epoch=3, best_metric=0.25, best_epoch=2), {})
    torch.save({"payload": _Payload(marker)}, folder / LEGACY_TRAIN_STATE)
    _, state = load_checkpoint(folder)
    assert (state.epoch, state.best_metric, state.best_epoch) == (3, 0.25, 2) and not marker.exists()


def test_values_json_and_safetensors_cannot_hold_are_refused_on_save(tmp_path):
    with pytest.raises(TypeError, match="extra/trainer/schedule"):
        save_checkpoint(tmp_path, _student(), student_spec("bilstm", PARAMS, CTX),
                        LoopState(extra={"trainer": {"schedule": lambda step: 1.0}}), {})
