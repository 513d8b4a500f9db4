"""``supervised``: the student trained on gold labels only, without a teacher (the no-KD baseline).

Not a distillation method: the floor every KD method is measured against (Tang et al. 2019's
"BiLSTM trained on hard labels", 86.7 on SST-2 test against 90.7 distilled). Cross-entropy on the
gold labels of the training split (MSE for regression); the teacher's soft targets are ignored.
In a low-data sweep (``data.train_size``) it answers whether distillation helped at all.

Example search-space entry::

    methods:
      supervised: {}
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PARAMS", "Supervised", "make_method"]

PARAMS: dict = {}


@dataclass(frozen=True)
class Supervised:
    """Gold-label objective.

    Attributes:
        regression: the task has one real-valued output (MSE instead of cross-entropy).
    """

    regression: bool = False
    name: str = "supervised"
    uses_task_train_data: bool = True

    def objective(self, student_logits, batch: dict):
        """Cross-entropy (or MSE) of ``student_logits`` ``[B, C]`` against ``batch["labels"]`` ``[B]``."""
        from raykd.losses import hard_label_loss

        loss = hard_label_loss(student_logits, batch["labels"], self.regression)
        return loss, {"loss_hard": float(loss.detach()), "loss_soft": 0.0}


def make_method(params: dict, task) -> Supervised:
    """Build the objective for ``task`` (no settings)."""
    return Supervised(regression=task.is_regression)
