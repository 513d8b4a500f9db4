"""A readable plan of a checked search space (``raykd validate``)."""

from __future__ import annotations

from raykd.checks import CheckedInputs
from raykd.config import SweepConfig
from raykd.domains import Fixed, format_domain

__all__ = ["describe_plan", "describe_multi_task_plan"]


def _domains(title: str, domains: dict) -> list[str]:
    searched = {k: v for k, v in domains.items() if not isinstance(v, Fixed)}
    fixed = {k: v for k, v in domains.items() if isinstance(v, Fixed)}
    lines = [f"  {title}"]
    lines += [f"    {name:20s} {format_domain(domain)}" for name, domain in searched.items()]
    if fixed:
        lines.append("    fixed: " + ", ".join(f"{k}={v.value!r}" for k, v in fixed.items()))
    return lines


def _data_free_line(space: SweepConfig) -> list[str]:
    """Which methods never read the task's training split (empty when none is data-free)."""
    from raykd.registry import uses_task_train_data

    data_free = [m for m in space.methods if not uses_task_train_data(m)]
    if not data_free:
        return []
    if len(data_free) == len(space.methods):
        return [f"data-free ({', '.join(data_free)}): the training split is never opened"]
    with_data = [m for m in space.methods if m not in data_free]
    return [f"data-free ({', '.join(data_free)}): trials never read the training split, which only "
            f"{', '.join(with_data)} reads"]


def describe_plan(space: SweepConfig, inputs: CheckedInputs, teacher_lines: list[str] = (), fine_tune: bool = False) -> str:
    """Describe what ``raykd sweep`` would run, as text.

    Args:
        teacher_lines: what the pre-sweep checks found about the teacher (its dev metric, or the
            teacher stage that fine-tunes it), printed under the teacher line.
        fine_tune: ``inputs.teacher`` is the base encoder the teacher stage fine-tunes.
    """
    task, teacher = inputs.task, inputs.teacher
    if fine_tune:
        head = (f"teacher: fine-tuned from {teacher.path} for {task.name} with a new head of "
                f"{task.num_labels} output(s) ({'regression' if task.is_regression else ', '.join(task.label_names)})")
    else:
        head = (f"teacher {teacher.path}: {teacher.num_labels} outputs ({', '.join(teacher.label_names)}), "
                f"{teacher.config.get('num_hidden_layers', '?')} layers, hidden {teacher.config.get('hidden_size', '?')}")
    sizes = ", ".join(f"{name} {len(frame):,}" for name, frame in inputs.frames.items())
    labels = "regression (1 output)" if task.is_regression else ", ".join(task.label_names)
    lines = [
        f"space {space.name}: OK",
        f"task {task.name}: {'sentence pairs' if task.is_pair else 'single sentences'}; labels {labels}; "
        f"objective: maximise dev {task.primary_metric}, minimise student parameters",
        f"data ({space.data.source}): {sizes} examples; max_length {space.data.max_length}"
        + (f"; low-data train_size {space.data.train_size} (seed {space.seed})" if space.data.train_size else ""),
        *_data_free_line(space),
        head,
        *teacher_lines,
    ]
    return "\n".join(lines + _search_lines(space))


def describe_multi_task_plan(space: SweepConfig, checked: dict, teacher_lines: dict[str, list[str]] | None = None) -> str:
    """Describe what ``raykd sweep`` would run for a multi-task space (``tasks: [...]``), as text.

    Args:
        checked: task -> :class:`~raykd.checks.TaskInputs` (skipped tasks already left out).
        teacher_lines: task -> what the pre-sweep checks found about its teacher.
    """
    lines = [f"space {space.name}: OK",
             f"tasks ({len(checked)} of {len(space.tasks)}): objective: maximise the macro average of the tasks' "
             "dev metrics, minimise the parameters serving all tasks"]
    for name, c in checked.items():
        task, teacher = c.inputs.task, c.inputs.teacher
        sizes = ", ".join(f"{split} {len(frame):,}" for split, frame in c.inputs.frames.items())
        source = (f"fine-tuned from {teacher.path} before the trials ({space.teacher.fine_tune_epochs} epochs, "
                  f"lr {space.teacher.fine_tune_lr:g}; cached for reuse)" if c.fine_tune else f"{teacher.path}")
        lines += [f"  {name}: {'pairs' if task.is_pair else 'single sentences'}, dev {task.primary_metric}; "
                  f"data ({c.space.data.source}) {sizes}", f"    teacher: {source}",
                  *(teacher_lines or {}).get(name, ())]
    lines.append(f"data: max_length {space.data.max_length}"
                 + (f"; train_limit {space.data.train_limit}" if space.data.train_limit else ""))
    return "\n".join(lines + _search_lines(space))


def _search_lines(space: SweepConfig) -> list[str]:
    """Methods, students, training and the trial plan."""
    res = space.resources
    lines = [f"methods ({len(space.methods)}):"]
    for name, domains in space.methods.items():
        lines += _domains(name, domains)
    lines.append(f"students ({len(space.students)}):")
    for name, domains in space.students.items():
        lines += _domains(name, domains)
        if space.student_training.get(name):
            lines += ["  " + line for line in _domains("training (overrides)", space.student_training[name])]
    lines.append("training:")
    lines += _domains("all trials", space.training)[1:]
    budget = space.budget
    concurrent = budget.max_concurrent or "cluster CPUs / CPUs per trial"
    gpus = f", {res.gpus_per_worker:g} GPU" if res.use_gpu else ""
    gpus += "".join(f", {amount:g} {name}" for name, amount in res.worker_resources.items())
    lines += [
        f"trial plan: {budget.num_samples} trials chosen by Optuna (multi-objective TPE, seed {space.seed}), "
        f"at most {concurrent} at once",
        f"  each trial: {res.num_workers} Ray Train worker(s) x {res.cpus_per_worker:g} CPU{gpus}"
        f"{' (DDP)' if res.num_workers > 1 else ''}; up to {res.max_failures} restart(s) after a lost worker",
    ]
    if budget.time_budget_s:
        lines.append(f"  no new trials after {budget.time_budget_s:g} s")
    return lines
