"""What a distillation method provides to the loop."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Method"]


class Method(Protocol):
    """A distillation method, as the training loop sees it.

    A method module (``raykd/methods/<name>.py``) exposes ``PARAMS`` (its searchable settings as
    :class:`~raykd.domains.ParamSpec`) and ``make_method(params, task) -> Method``.

    Attributes:
        name: the registered name (``vanilla``).
        uses_task_train_data: False for data-free methods; the data layer then refuses the
            task's training split.
    """

    name: str
    uses_task_train_data: bool

    def objective(self, student_logits, batch: dict):
        """Loss of one batch.

        Args:
            student_logits: float ``[B, C]`` (``[B, 1]`` for regression).
            batch: ``teacher_logits`` ``[B, C]``, ``labels`` ``[B]`` and the model inputs.

        Returns:
            ``(loss, parts)``: a scalar tensor and ``{name: float}`` for logging.
        """
        ...
