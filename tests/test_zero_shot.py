"""Zero-shot KD and the random-token baseline on tiny models: gradients, the frozen teacher, finite steps."""

import numpy as np
import pytest
import torch

from raykd.data.encoding import EncodedSplit
from raykd.data.tasks import get_task
from raykd.datafree.base import DataFreeEnv, freeze
from raykd.datafree.loop import fit_data_free
from raykd.distill.loop import LoopSettings
from raykd.errors import RaykdInputError
from raykd.methods import random_tokens, zero_shot
from raykd.students import StudentContext, build_student

VOCAB, WIDTH = 120, 32


def tiny_teacher(num_labels=2):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    return freeze(BertForSequenceClassification(config))


def tiny_ood(n=40, pair=False, num_labels=2):
    rng = np.random.default_rng(0)
    ids, types, offsets = [], [], [0]
    for _ in range(n):
        a = rng.integers(5, VOCAB, size=rng.integers(3, 9)).tolist()
        row, row_types = [1, *a, 2], [0] * (len(a) + 2)
        if pair:
            b = rng.integers(5, VOCAB, size=rng.integers(3, 9)).tolist()
            row, row_types = row + b + [2], row_types + [1] * (len(b) + 1)
        ids += row
        types += row_types
        offsets.append(len(ids))
    return EncodedSplit(np.array(ids, np.int32), np.array(types, np.int8), np.array(offsets),
                        np.full(n, -1), rng.normal(size=(n, num_labels)).astype(np.float32))


def tiny_env(task="sst2", ood=True):
    spec = get_task(task)
    teacher = tiny_teacher(spec.num_labels)
    return DataFreeEnv(teacher=teacher, teacher_embeddings=teacher.get_input_embeddings().weight.detach(),
                       cls_id=1, sep_id=2, pad_id=0, mask_id=3, special_ids=(0, 1, 2, 3), task=spec, max_length=64,
                       batch_size=8, ood=tiny_ood(pair=spec.is_pair, num_labels=spec.num_labels) if ood else None,
                       tokens=tuple(f"t{i}" for i in range(VOCAB)))


def tiny_student(family="transformer", task="sst2", width=WIDTH):
    spec = get_task(task)
    ctx = StudentContext(num_labels=spec.num_labels, is_pair=spec.is_pair, vocab_size=VOCAB, pad_token_id=0,
                         max_length=64)
    params = ({"num_layers": 1, "init": "random", "hidden_size": width, "num_heads": 2, "ffn_dim": 64,
               "dropout": 0.0, "freeze_embeddings": False} if family == "transformer" else
              {"embedding_dim": width, "hidden_dim": 16, "num_layers": 1, "mlp_dim": 16, "dropout": 0.0,
               "pooling": "max", "embedding_init": "random", "freeze_embeddings": False})
    return build_student(family, params, ctx, init_from_teacher=False)


def settings(**changes):
    base = {name: spec.default for name, spec in zero_shot.PARAMS.items()}
    return {**base, "gen_length": 6, "student_steps": 2, **changes}


CASES = [("noise", "gumbel_vocab", "transformer"), ("noise", "embedding", "transformer"),
         ("perturb", "gumbel_vocab", "bilstm"), ("perturb", "embedding", "transformer"),
         ("noise", "embedding", "bilstm")]


@pytest.mark.parametrize(("generator", "space", "family"), CASES)
def test_generator_step_reaches_the_generator_and_never_the_teacher(generator, space, family):
    env = tiny_env()
    student = tiny_student(family, width=16 if family == "bilstm" else WIDTH)
    trainer = zero_shot.make_trainer(settings(generator=generator, gen_space=space, projection=True), env, student)
    before = {k: v.clone() for k, v in env.teacher.state_dict().items()}
    gen_before = [p.detach().clone() for p in trainer.generator.parameters()]
    parts = trainer.generator_steps(student, step=0)
    assert np.isfinite(parts["gen_discrepancy"])
    moved = [not torch.equal(a, b.detach()) for a, b in zip(gen_before, trainer.generator.parameters())]
    assert sum(moved) >= len(moved) - 1  # every generator weight that feeds the output moved
    assert all(p.grad is None for p in env.teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in env.teacher.state_dict().items())
    # the student step trains the student (and the projection), not the generator
    for p in trainer.generator.parameters():
        p.grad = None
    loss, _ = trainer.student_loss(student, step=1)
    loss.backward()
    assert all(p.grad is None for p in trainer.generator.parameters())
    assert student.classifier.weight.grad is not None if family == "transformer" else student.head[0].weight.grad is not None
    if "projection" in trainer.student_modules:
        assert trainer.student_modules["projection"].weight.grad is not None
    assert all(p.grad is None for p in env.teacher.parameters())


def test_pair_tasks_get_two_segments():
    env = tiny_env("mrpc")
    trainer = zero_shot.make_trainer(settings(), env, tiny_student(task="mrpc"))
    batch = trainer.generate(tiny_student(task="mrpc"), 4, train_generator=False)
    assert batch.teacher_embeds.shape[:2] == batch.token_type_ids.shape
    assert (batch.token_type_ids == 1).any() and (batch.token_type_ids[:, 0] == 0).all()
    assert batch.ids[0, 0] == env.cls_id and batch.ids[0, -1] == env.sep_id
    assert (batch.ids == env.sep_id).sum(dim=1).eq(2).all()


@pytest.mark.parametrize("method", ["zero_shot", "random_tokens"])
def test_a_few_epochs_stay_finite_and_report_diagnostics(method):
    env = tiny_env()
    student = tiny_student()
    module = zero_shot if method == "zero_shot" else random_tokens
    params = settings() if method == "zero_shot" else {"kd_loss": "kl", "temperature": 2.0, "gen_length": 6}
    trainer = module.make_trainer(params, env, student)
    reports = []
    fit_data_free(student, trainer, LoopSettings(epochs=2, batch_size=8, lr=1e-3), steps_per_epoch=4,
                  evaluate=lambda m: {"accuracy": 0.5}, primary="accuracy",
                  report=lambda metrics, state: reports.append(metrics))
    assert [r["epoch"] for r in reports] == [1, 2]
    for r in reports:
        assert np.isfinite(r["train_loss"])
        assert abs(r["gen_class_0"] + r["gen_class_1"] - 1) < 1e-6 and 0 <= r["gen_agreement"] <= 1
    text = trainer.diagnostics(student)[1]
    assert text.count("\n") == 7 and "t" in text  # 8 readable samples


def test_embedding_space_refuses_a_narrower_student_without_projection():
    teacher_config = {"hidden_size": 384}
    with pytest.raises(RaykdInputError, match="projection: true"):
        zero_shot.check_student({"gen_space": "embedding", "projection": False}, "bilstm", {"embedding_dim": 128},
                                teacher_config)
    zero_shot.check_student({"gen_space": "embedding", "projection": True}, "bilstm", {"embedding_dim": 128},
                            teacher_config)
    zero_shot.check_student({"gen_space": "embedding", "projection": False}, "transformer",
                            {"init": "teacher_skip", "hidden_size": 64}, teacher_config)
    zero_shot.check_student({"gen_space": "gumbel_vocab"}, "bilstm", {"embedding_dim": 128}, teacher_config)


def test_without_an_ood_set_ood_settings_are_refused():
    env = tiny_env(ood=False)
    with pytest.raises(ValueError, match="out-of-domain"):
        zero_shot.make_trainer(settings(ood_fraction=0.5), env, tiny_student())
    zero_shot.make_trainer(settings(ood_fraction=0.0), env, tiny_student())  # generator only: fine


def test_trainer_state_round_trips():
    env = tiny_env()
    student = tiny_student()
    trainer = zero_shot.make_trainer(settings(), env, student)
    trainer.generator_steps(student, 0)
    state = trainer.state_dict()
    other = zero_shot.make_trainer(settings(), env, student)
    other.load_state_dict(state)
    for a, b in zip(trainer.generator.parameters(), other.generator.parameters()):
        assert torch.equal(a, b)


def test_student_step_tokens_follow_the_generators_softmax_and_skip_special_ids():
    """``sample_tokens`` (student steps) draws from the distribution gumbel_tokens' forward pass draws from."""
    from raykd.datafree.samples import gumbel_tokens, sample_tokens

    torch.manual_seed(0)
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0, 5.0]).expand(4000, 1, 5).clone()  # id 4 is special
    allowed = torch.tensor([True, True, True, True, False])
    drawn = sample_tokens(logits, torch.tensor([4])).flatten()
    gumbel = gumbel_tokens(logits, 1.5, allowed).argmax(-1).flatten()  # tau shapes only the backward pass
    expected = torch.softmax(torch.tensor([3.0, 2.0, 1.0, 0.0]), dim=0)
    for ids in (drawn, gumbel):
        share = torch.bincount(ids, minlength=5).float() / len(ids)
        assert share[4] == 0
        torch.testing.assert_close(share[:4], expected, atol=0.03, rtol=0)
    assert logits[0, 0, 4] == 5.0  # the caller's scores are not changed


@pytest.mark.parametrize("space", ["gumbel_vocab", "embedding"])
def test_perturb_rewrites_only_chosen_content_tokens(space):
    env = tiny_env()
    student = tiny_student("bilstm", width=16)
    trainer = zero_shot.make_trainer(settings(generator="perturb", gen_space=space, projection=True, perturb_p=0.5),
                                     env, student)
    torch.manual_seed(0)
    batch = trainer.generate(student, 8, train_generator=False)
    w_t = env.teacher_embeddings
    same = (batch.teacher_embeds == w_t[batch.ids]).all(-1) if batch.ids is not None else None
    changed = ~(batch.teacher_embeds[..., None, :] == w_t).all(-1).any(-1)  # positions no vocabulary row explains
    if space == "gumbel_vocab":
        assert same.all()  # every position is a real row, rewritten ones included
    else:
        assert changed.any() and not changed[:, 0].any()  # [CLS] is never rewritten
    assert batch.teacher_embeds.shape[:2] == batch.attention_mask.shape
    trainer.s = zero_shot.ZeroShotSettings(**{**trainer.s.__dict__, "perturb_p": 1e-9})  # nothing chosen
    assert torch.isfinite(trainer.generate(student, 4, train_generator=True).teacher_embeds).all()
