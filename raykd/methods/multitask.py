"""``multitask``: multi-task knowledge distillation (MKD), one student for several tasks.

Paper: Liu, Wang, Lin, Socher & Xiong 2019, "Attentive Student Meets Multi-Task Teacher: Improved
Knowledge Distillation for Pretrained Models" / "MKD: a Multi-Task Knowledge Distillation Approach
for Pretrained Language Models" (arXiv 1911.03588): a student with shared layers and task-specific
layers is distilled jointly across GLUE tasks from logits, then optionally fine-tuned on each
target task.

What raykd does (``../shared/METHODS.md`` section 5): the student is a shared encoder (the
``bilstm`` family, ideally with ``pooling: attention``, or a small ``transformer``) with one head
per task (one output for STS-B's regression), :mod:`raykd.students.multitask`. Each optimiser step
takes one task's batch (:func:`raykd.distill.multitask.task_schedule`): ``sampling: proportional``
is MT-DNN's schedule (every task's batches once per epoch, shuffled, so tasks appear in proportion
to their size); ``sampling: temperature`` draws the task with ``p_t ~ n_t^(1/tau)``
(``sampling_temperature`` = tau; large tau approaches uniform, which helps small tasks). The loss of
a task's batch is the vanilla soft-target objective against that task's own teacher
(``alpha * gold + (1 - alpha) * D(z_s, z_t)``, ``kd_loss`` kl or mse; :mod:`raykd.methods.vanilla`).
The epoch with the best GLUE macro average (mean of each task's primary dev metric) is kept. With
``finetune_epochs > 0`` each task's model (shared encoder + its head) is then copied and fine-tuned
on that task alone with the same objective, and each task keeps its best fine-tuning epoch.

Parameters are counted twice: once for the whole student (shared encoder + every head, what serves
all tasks; ``student_params``) and per task (shared encoder + that task's head; ``<task>/params``).
After per-task fine-tuning the tasks no longer share an encoder, so ``student_params`` is the sum
of the per-task models.

Where raykd departs from the paper: the paper's teacher is one BERT refined by multi-task learning on
seven GLUE tasks; raykd distils from one teacher per task (fine-tuned by raykd's teacher stage or
given ready). The paper's student is a bi-attentive BiLSTM (BCN-like); raykd uses its own BiLSTM
(or transformer) student with optional self-attention pooling. The paper's loss weights, schedule
and sizes are unknown (``../shared/notes/seeds-gen-mkd.md``); raykd searches them. The BiLSTM
embeddings (``embedding_init: teacher``) and a teacher-initialised transformer come from the first
task's teacher. One worker per trial.

Example search-space entry (in a space with ``tasks: [...]``)::

    methods:
      multitask: {kd_loss: mse, sampling: [proportional, temperature], sampling_temperature: 2,
                  finetune_epochs: [0, 2]}
"""

from __future__ import annotations

from raykd.domains import ParamSpec
from raykd.methods import vanilla
from raykd.methods.vanilla import KD_PARAMS

__all__ = ["PARAMS", "ARMS", "MULTI_TASK", "active", "make_method"]

MULTI_TASK = True
"""A trial of this method trains one student on every task of the sweep at once."""

PARAMS = {
    **KD_PARAMS,
    "sampling": ParamSpec(str, "proportional", "which task each step trains: proportional (MT-DNN: every task's "
                          "batches once per epoch) or temperature (p_t ~ n_t^(1/tau))",
                          choices=("proportional", "temperature")),
    "sampling_temperature": ParamSpec(float, 2.0, "tau of temperature sampling (1 = proportional, large = "
                                      "uniform over tasks)", low=0, low_open=True),
    "finetune_epochs": ParamSpec(int, 0, "epochs of per-task fine-tuning after the joint distillation "
                                 "(0 = none: one shared student)", low=0),
}


ARMS = ("finetune_epochs",)
"""Settings whose every choice a sweep tries once first: with ``finetune_epochs: [0, 2]`` the shared student
and its per-task fine-tuned copies both run (MKD's core ablation), whatever Optuna would sample."""


def active(chosen: dict) -> set[str]:
    """Settings that exist given those chosen so far: ``temperature`` only for ``kl``, ``sampling_temperature``
    only for temperature sampling."""
    names = vanilla.active(chosen, set(PARAMS))
    if chosen.get("sampling", PARAMS["sampling"].default) != "temperature":
        names.discard("sampling_temperature")
    return names


def make_method(params: dict, task) -> vanilla.VanillaKD:
    """One task's objective: vanilla soft-target KD against that task's teacher (see the module docstring)."""
    return vanilla.make_method(params, task, name="multitask")
