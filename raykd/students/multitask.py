"""Multi-task student: one shared encoder, one head per task (MKD, Liu et al. 2019).

Paper: Liu, Wang, He, Lee, Gao & Chen 2019, "MKD: a Multi-Task Knowledge Distillation Approach for
Pretrained Language Models" (arXiv 1911.03588). One student learns several tasks at once, each
from its own soft targets; the encoder sees every task's transfer set, so the tasks regularise
each other and the student pays for one encoder instead of one per task.

What is shared (:data:`SHARED_MODULES`): for ``bilstm`` the word embeddings, the BiLSTM and, with
``pooling: attention``, the attention scorer; for ``transformer`` the whole ``bert`` module
(embeddings, encoder layers, pooler). Each task keeps its own head (the BiLSTM's MLP, the
transformer's classifier), sized for its labels and its input kind: a pair task's BiLSTM head
reads ``[u, v, |u-v|, u*v]`` and a regression task's head has one output.

Every per-task student is a complete student of its family whose shared attributes are the very
same module objects, so it can be evaluated, saved or timed alone (:meth:`MultiTaskStudent.task_model`),
and ``parameters()`` of the whole yields each shared tensor once.

Where raykd departs from the paper:
- student: MKD-LSTM is a BCN-like bi-attentive BiLSTM; raykd uses its BiLSTM student
  (:mod:`raykd.students.bilstm`) with optional self-attentive pooling (``pooling: attention``),
  or its small BERT;
- teachers: MKD distils from one teacher refined by multi-task learning (MT-DNN); raykd uses each
  task's own fine-tuned teacher, which must share one tokenizer vocabulary;
- schedule: the paper does not say how tasks are interleaved; raykd uses MT-DNN's (every task's
  batches once per epoch, in shuffled order; :func:`raykd.distill.multitask.task_schedule`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from raykd.errors import RaykdInputError
from raykd.students import StudentContext, build_student
from raykd.students.params import count_parameters

__all__ = ["SHARED_MODULES", "MultiTaskStudent", "build_multitask_student", "multitask_param_counts"]

SHARED_MODULES: dict[str, tuple[str, ...]] = {"bilstm": ("embedding", "lstm", "attention"), "transformer": ("bert",)}
"""Per family, the attributes of a student that all tasks share (those a student lacks are skipped)."""


class MultiTaskStudent(nn.Module):
    """Per-task students of one family with tied encoders (see the module docstring).

    Args:
        family: registered student family (a key of :data:`SHARED_MODULES`).
        students: task name -> that task's student; the first task's shared modules replace the
            others' (the others' own copies are dropped).

    Attributes:
        family: the student family.
        tasks: ``nn.ModuleDict`` task name -> per-task student.
        shared_names: the attributes tied across tasks.

    Raises:
        RaykdInputError: no students, or a family without an entry in :data:`SHARED_MODULES`.
    """

    def __init__(self, family: str, students: Mapping[str, nn.Module]):
        super().__init__()
        if not students:
            raise RaykdInputError("multitask: no tasks given; list at least one task")
        if family not in SHARED_MODULES:
            raise RaykdInputError(f"multitask: no shared modules known for family {family!r}; "
                                  f"use one of {', '.join(SHARED_MODULES)}")
        self.family = family
        first = next(iter(students.values()))
        self.shared_names = tuple(n for n in SHARED_MODULES[family] if isinstance(getattr(first, n, None), nn.Module))
        for student in students.values():
            for name in self.shared_names:
                setattr(student, name, getattr(first, name))
        self.tasks = nn.ModuleDict(dict(students))

    @property
    def task_names(self) -> list[str]:
        """The tasks, in the order given."""
        return list(self.tasks.keys())

    def forward(self, task: str, input_ids: Tensor, attention_mask: Tensor,
                token_type_ids: Tensor | None = None) -> Tensor:
        """Logits of ``task``'s head on ``[B, T]`` ids, mask and token types (needed by pair tasks).

        Returns:
            ``[B, num_labels of task]`` logits.
        """
        return self.task_model(task)(input_ids, attention_mask, token_type_ids)

    def task_model(self, task: str) -> nn.Module:
        """The standalone student of ``task``: the shared encoder plus that task's head.

        Raises:
            KeyError: ``task`` is not one of :attr:`task_names`.
        """
        if task not in self.tasks:
            raise KeyError(f"multitask student has no task {task!r}; it has {', '.join(self.tasks)}")
        return self.tasks[task]

    def shared_modules(self) -> dict[str, nn.Module]:
        """The tied modules, by attribute name."""
        first = next(iter(self.tasks.values()))
        return {name: getattr(first, name) for name in self.shared_names}


def build_multitask_student(family: str, params: Mapping[str, Any], contexts: Mapping[str, StudentContext], *,
                            init_from_teacher: bool = True, seed: int = 0) -> MultiTaskStudent:
    """Build one student of ``family`` with ``params`` for every task in ``contexts``, encoders tied.

    The first task's student is built (after ``torch.manual_seed(seed)``) as
    :func:`raykd.students.build_student` would, teacher initialisation included; the other tasks'
    are built at random with the first task's teacher (so widths agree) and only their heads are
    kept. Every task gets ``max_length`` = the largest of the contexts (transformer positions).

    Args:
        family: registered student family.
        params: the family's settings, shared by every task.
        contexts: task name -> its :class:`StudentContext` (labels, pair or not, its teacher).
        init_from_teacher: False builds the first task's student at random too.
        seed: torch seed of the random weights.

    Raises:
        RaykdInputError: no contexts, contexts whose teachers have different vocabularies (or pad
            ids), or any error :func:`~raykd.students.build_student` raises.
    """
    if not contexts:
        raise RaykdInputError("multitask: no tasks given; list at least one task")
    _check_one_vocabulary(contexts)
    max_length = max(ctx.max_length for ctx in contexts.values())
    (first_task, first_ctx), *others = [(t, replace(c, max_length=max_length)) for t, c in contexts.items()]
    torch.manual_seed(seed)
    students = {first_task: build_student(family, params, first_ctx, init_from_teacher=init_from_teacher)}
    for task, ctx in others:
        ctx = replace(ctx, teacher_path=first_ctx.teacher_path, teacher_config=first_ctx.teacher_config)
        students[task] = build_student(family, params, ctx, init_from_teacher=False)
    return MultiTaskStudent(family, students)


def multitask_param_counts(model: MultiTaskStudent) -> dict:
    """Parameter counts of a multi-task student (rule: :mod:`raykd.students.params`).

    Returns:
        ``total`` and ``total_non_embedding``: the shared encoder plus every head, each parameter
        once; ``shared``: the tied modules alone; ``per_task`` and ``per_task_non_embedding``:
        task -> the shared encoder plus that task's head (what serving one task costs).
    """
    total = count_parameters(model)
    per_task = {task: count_parameters(model.task_model(task)) for task in model.task_names}
    return {
        "total": total.total,
        "total_non_embedding": total.non_embedding,
        "shared": count_parameters(nn.ModuleDict(model.shared_modules())).total,
        "per_task": {task: count.total for task, count in per_task.items()},
        "per_task_non_embedding": {task: count.non_embedding for task, count in per_task.items()},
    }


def _check_one_vocabulary(contexts: Mapping[str, StudentContext]) -> None:
    (first, ctx0), *rest = contexts.items()
    for task, ctx in rest:
        for field in ("vocab_size", "pad_token_id"):
            a, b = getattr(ctx0, field), getattr(ctx, field)
            if a != b:
                raise RaykdInputError(
                    f"multitask needs teachers with one vocabulary; task {first} has {field} {a}, task {task} has {b}"
                )
