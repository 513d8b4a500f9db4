"""``as_dfd``: the PPEG bank, its cache, the adversarial self-supervised trainer, student checks."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch

from raykd.data.tasks import get_task
from raykd.datafree.base import DataFreeEnv, freeze
from raykd.datafree.loop import fit_data_free
from raykd.distill.loop import LoopSettings
from raykd.errors import RaykdInputError
from raykd.methods import as_dfd
from raykd.students import StudentContext, build_student

TEACHER = Path(__file__).resolve().parents[2] / "shared" / "models" / "minilm-sst2"
needs_teacher = pytest.mark.skipif(not TEACHER.is_dir(), reason="real teacher weights not present")

VOCAB, WIDTH, MAX_LEN = 100, 32, 32
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
FAST = {"bank_per_class": 8, "bank_steps": 3, "gen_length": 6, "adv_steps": 1}
STUDENTS = {
    "transformer": {"num_layers": 1, "hidden_size": WIDTH, "num_heads": 2, "ffn_dim": 32, "dropout": 0.0},
    "bilstm": {"embedding_dim": 16, "hidden_dim": 8, "mlp_dim": 8, "embedding_init": "random", "dropout": 0.0},
}


@pytest.fixture(scope="module")
def teacher():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    return freeze(BertForSequenceClassification(config))


def _env(teacher, task="sst2", cache_dir=None, seed=0):
    return DataFreeEnv(
        teacher=teacher, teacher_embeddings=teacher.get_input_embeddings().weight.detach(), cls_id=CLS, sep_id=SEP,
        pad_id=PAD, mask_id=MASK, special_ids=(PAD, UNK, CLS, SEP, MASK), task=get_task(task), max_length=MAX_LEN,
        batch_size=8, seed=seed, cache_dir=cache_dir,
        tokens=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(5, VOCAB))),
    )


def _student(family, is_pair=False):
    torch.manual_seed(1)
    ctx = StudentContext(num_labels=2, is_pair=is_pair, vocab_size=VOCAB, pad_token_id=PAD, max_length=MAX_LEN)
    return build_student(family, STUDENTS[family], ctx)


def _teacher_snapshot(teacher):
    return {name: p.detach().clone() for name, p in teacher.state_dict().items()}


# (a) gradients reach the bank and the student, never the teacher


@pytest.mark.parametrize(("family", "ssl_task"), [("transformer", "shuffle"), ("bilstm", "replace")])
def test_student_step_and_adversarial_update(teacher, family, ssl_task):
    student = _student(family).train()
    params = dict(FAST, ssl_task=ssl_task, projection=family == "bilstm")
    trainer = as_dfd.make_trainer(params, _env(teacher), student)
    before_teacher, before_bank = _teacher_snapshot(teacher), trainer.bank.clone()

    loss, parts = trainer.student_loss(student, 0)
    loss.backward()
    assert set(parts) == {"loss_kd", "loss_ssl", "ssl_accuracy"} and math.isfinite(loss.item())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert student.embedding.weight.grad is None  # pseudo samples bypass the student's table
    for module in trainer.student_modules.values():
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert trainer.generator_steps(student, 0) == {}  # the schedule starts after adv_steps student steps
    grads = {name: p.grad.clone() for name, p in student.named_parameters() if p.grad is not None}
    logged = trainer.generator_steps(student, 1)
    assert set(logged) == {"adv_loss_ssl", "adv_teacher_ce", "adv_target_accuracy"}
    changed = (trainer.bank != before_bank).flatten(1).any(dim=1)
    assert changed.sum() == min(8, len(trainer.bank))  # exactly the sampled rows moved
    assert trainer.state_dict()["adv_count"].sum() == changed.sum()
    for name, p in student.named_parameters():  # the adversarial step leaves the student's grads alone
        if name in grads:
            assert torch.equal(p.grad, grads[name])

    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    after = teacher.state_dict()
    assert all(torch.equal(before_teacher[name], after[name]) for name in before_teacher)


def test_ssl_transforms_label_what_they_change():
    content = torch.arange(6 * 4 * 3, dtype=torch.float32).view(6, 4, 3)
    for task in ("shuffle", "replace"):
        out, labels = as_dfd.ssl_transform(content, task, torch.Generator().manual_seed(0))
        changed = (out != content).flatten(1).any(dim=1)
        assert labels.sum() == 3 and torch.equal(changed, labels.bool())
        if task == "replace":  # only the second half of the content is swapped
            assert torch.equal(out[:, :2], content[:, :2])


# (b) a few steps of the real loop stay finite


def test_fit_data_free_runs_finite(teacher):
    student = _student("bilstm")  # narrower than the teacher: reads pseudo samples through a projection
    env = _env(teacher)
    trainer = as_dfd.make_trainer(dict(FAST, adv_steps=2, kd_loss="l1", projection=True), env, student)
    reports, synced = [], []

    def evaluate(model):  # the loop writes projection(teacher table) into the student before evaluating
        with torch.no_grad():
            expected = trainer.student_modules["projection"](env.teacher_embeddings[:VOCAB].float())
        synced.append(torch.allclose(model.embedding.weight[:VOCAB], expected, atol=1e-5))
        return {"accuracy": 0.5}

    fit_data_free(student, trainer, LoopSettings(epochs=1, batch_size=8, lr=1e-3), steps_per_epoch=5,
                  evaluate=evaluate, primary="accuracy", report=lambda metrics, state: reports.append(metrics))
    assert synced == [True]
    (metrics,) = reports
    for key in ("loss_kd", "loss_ssl", "adv_loss_ssl", "bank_target_accuracy", "gen_agreement", "bank_norm_ratio"):
        assert math.isfinite(metrics[key]), key
    assert torch.isfinite(trainer.bank).all()
    assert all(torch.isfinite(p).all() for p in student.parameters())
    _, text = trainer.diagnostics(student.eval())
    assert text.count("\n") == 7 and "[CLS]" in text and text.startswith("target ")


# (c) the bank is built once and read from the cache afterwards


def test_bank_is_cached(teacher, tmp_path):
    env = _env(teacher, cache_dir=str(tmp_path))
    first = as_dfd.make_trainer(FAST, env, _student("transformer"))
    assert first.bank_built_here and first.bank_path.is_file()
    assert first.bank_path.parent.parent == tmp_path / "as_dfd_banks"
    assert not list(first.bank_path.parent.glob(".tmp-*"))
    stamp = first.bank_path.stat().st_mtime_ns

    second = as_dfd.make_trainer(dict(FAST, ssl_task="replace"), env, _student("transformer"))  # stage-2 settings
    assert not second.bank_built_here and second.bank_path == first.bank_path
    assert second.bank_path.stat().st_mtime_ns == stamp
    assert torch.equal(first.bank, second.bank) and torch.equal(first.targets, second.targets)

    other = as_dfd.make_trainer(FAST, _env(teacher, cache_dir=str(tmp_path), seed=1), _student("transformer"))
    assert other.bank_built_here and other.bank_path != first.bank_path
    uncached = as_dfd.make_trainer(FAST, _env(teacher), _student("transformer"))
    assert uncached.bank_built_here and uncached.bank_path is None


def test_bank_shape_targets_and_init(teacher):
    env = _env(teacher)
    bank = as_dfd.build_bank(env, as_dfd.ASDFDSettings.from_params(dict(FAST, bank_steps=0)))
    assert bank.content.shape == (16, 6, WIDTH) and bank.targets.tolist() == [0] * 8 + [1] * 8
    # without optimisation every vector is a real, non-special vocabulary row
    rows = (bank.content.reshape(-1, 1, WIDTH) == env.teacher_embeddings[None]).all(-1)
    ids = rows.float().argmax(-1)
    assert rows.any(-1).all() and not set(ids.tolist()) & set(env.special_ids)


def test_state_dict_round_trip(teacher):
    student = _student("transformer").train()
    trainer = as_dfd.make_trainer(FAST, _env(teacher), student)
    trainer.generator_steps(student, 1)
    state = trainer.state_dict()
    fresh = as_dfd.make_trainer(FAST, _env(teacher), student)
    fresh.load_state_dict(state)
    head = trainer.student_modules["ssl_head"].state_dict()
    fresh.student_modules["ssl_head"].load_state_dict(head)  # the loop restores student modules
    assert torch.equal(fresh.bank, trainer.bank) and torch.equal(fresh._exp_avg, trainer._exp_avg)
    assert fresh.generator_steps(student, 1) == trainer.generator_steps(student, 1)  # same rows, same transforms
    assert torch.equal(fresh.bank, trainer.bank)
    with pytest.raises(ValueError, match="shape"):
        as_dfd.make_trainer(dict(FAST, bank_per_class=4), _env(teacher), student).load_state_dict(state)


# (d) students the pseudo samples cannot reach are refused up front


def test_check_student():
    teacher_config = {"hidden_size": WIDTH}
    bilstm = STUDENTS["bilstm"]
    with pytest.raises(RaykdInputError, match=r"32-d embedding space but bilstm embeds in 16-d.*projection: true"):
        as_dfd.check_student({"projection": False}, "bilstm", bilstm, teacher_config)
    as_dfd.check_student({"projection": True}, "bilstm", bilstm, teacher_config)
    as_dfd.check_student({}, "bilstm", dict(bilstm, embedding_dim=WIDTH), teacher_config)
    as_dfd.check_student({}, "transformer", {"init": "teacher_skip", "hidden_size": 16}, teacher_config)
    with pytest.raises(RaykdInputError, match="transformer embeds in 256-d"):  # the default hidden_size
        as_dfd.check_student({}, "transformer", {"init": "random"}, teacher_config)
    as_dfd.check_student({}, "bilstm", bilstm, None)  # nothing known about the teacher: nothing to check


def test_check_student_with_search_domains():
    from raykd.domains import Choice, Fixed, Range

    config = {"hidden_size": WIDTH}
    with pytest.raises(RaykdInputError, match="embeds in 16-d"):
        as_dfd.check_student({"projection": Choice((False, True))}, "bilstm", {"embedding_dim": Choice((WIDTH, 16))},
                             config)
    as_dfd.check_student({"projection": Fixed(True)}, "bilstm", {"embedding_dim": Range(8, 64, is_int=True)}, config)


def test_projection_student(teacher):
    student = _student("bilstm")
    with pytest.raises(RaykdInputError, match="projection: true"):
        as_dfd.make_trainer(FAST, _env(teacher), student)
    trainer = as_dfd.make_trainer(dict(FAST, projection=True), _env(teacher), student)
    projection = trainer.student_modules["projection"]
    assert (projection.in_features, projection.out_features) == (WIDTH, 16)
    assert trainer.student_modules["ssl_head"].in_features == student.feature_dim
    # a student of the teacher's width needs no projection even when it is allowed
    same = as_dfd.make_trainer(dict(FAST, projection=True), _env(teacher), _student("transformer"))
    assert set(same.student_modules) == {"ssl_head"}


@pytest.mark.parametrize(("family", "task"), [("bilstm", "sst2"), ("transformer", "mrpc")])
def test_student_reads_real_ids_as_it_read_pseudo_samples(teacher, family, task):
    from raykd.datafree.samples import frame_ids

    env = _env(teacher, task)
    student = _student(family, env.task.is_pair).eval()
    trainer = as_dfd.make_trainer(dict(FAST, projection=True), env, student)
    ids, mask, types = frame_ids(torch.randint(5, VOCAB, (3, 6)), env)
    trainer.prepare_student(student)  # as fit_data_free does every epoch before evaluation
    with torch.no_grad():
        as_pseudo = trainer.make_batch(env.teacher_embeddings[ids[:, 1:-1]] if not env.task.is_pair else
                                       env.teacher_embeddings[torch.cat([ids[:, 1:4], ids[:, 5:8]], 1)])
        torch.testing.assert_close(student(ids, mask, types), as_pseudo.student_logits(student))


def test_projection_starts_from_a_pca_table(teacher):
    env = _env(teacher)
    table = env.teacher_embeddings
    centred = table - table.mean(dim=0)
    pca = centred @ torch.linalg.eigh(centred.T @ centred)[1][:, -16:]  # what embedding_init teacher builds
    student = _student("bilstm")
    with torch.no_grad():
        student.embedding.weight.copy_(pca)
    projection = as_dfd.make_trainer(dict(FAST, projection=True), env, student).student_modules["projection"]
    with torch.no_grad():
        torch.testing.assert_close(projection(table), pca, atol=1e-4, rtol=1e-4)
    # no linear map of the teacher's rows fits a random table: PyTorch's init, |w| <= 1/sqrt(fan_in)
    kept = as_dfd.make_trainer(dict(FAST, projection=True), env, _student("bilstm")).student_modules["projection"]
    assert kept.weight.abs().max() <= WIDTH**-0.5


def test_refusals(teacher):
    student = _student("transformer")
    with pytest.raises(RaykdInputError, match="regression"):
        as_dfd.make_trainer(FAST, _env(teacher, task="stsb"), student)
    with pytest.raises(RaykdInputError, match="gen_length"):
        as_dfd.make_trainer(dict(FAST, gen_length=31), _env(teacher), student)
    with pytest.raises(RaykdInputError, match="bank_lr"):
        as_dfd.make_trainer(dict(FAST, bank_lr=0), _env(teacher), student)
    assert as_dfd.active({"kd_loss": "l1"}) == set(as_dfd.PARAMS) - {"temperature"}
    assert "temperature" in as_dfd.active({}) and as_dfd.USES_TASK_TRAIN_DATA is False


# (e) pair tasks: two segments with token types


@pytest.mark.parametrize("family", ["transformer", "bilstm"])
def test_pair_task(teacher, family):
    student = _student(family, is_pair=True).train()
    trainer = as_dfd.make_trainer(dict(FAST, ssl_task="replace", projection=True), _env(teacher, "mrpc"), student)
    batch = trainer.make_batch(trainer.bank[:4])
    assert batch.teacher_embeds.shape[1] == 6 + 3
    assert batch.token_type_ids[:, -4:].eq(1).all() and batch.token_type_ids[:, :5].eq(0).all()
    loss, _ = trainer.student_loss(student, 0)
    loss.backward()
    assert math.isfinite(loss.item()) and trainer.generator_steps(student, 1)


# the real teacher


@needs_teacher
def test_real_teacher_bank_reaches_targets():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TEACHER)
    model = freeze(AutoModelForSequenceClassification.from_pretrained(TEACHER))
    env = DataFreeEnv(
        teacher=model, teacher_embeddings=model.get_input_embeddings().weight.detach(),
        cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id, pad_id=tokenizer.pad_token_id,
        mask_id=tokenizer.mask_token_id, special_ids=tuple(tokenizer.all_special_ids), task=get_task("sst2"),
        max_length=64, batch_size=4, teacher_fingerprint="minilm-sst2-test",
    )
    bank = as_dfd.build_bank(env, as_dfd.ASDFDSettings.from_params({"bank_per_class": 2, "bank_steps": 30}))
    with torch.no_grad():
        _, _, logits = as_dfd._class_loss(env, bank.content, bank.targets, as_dfd._real_norm(env), 0.0)
    accuracy = (logits.argmax(-1) == bank.targets).float().mean().item()
    assert accuracy >= 0.75, f"the teacher puts only {accuracy:.0%} of the bank in its target class"
