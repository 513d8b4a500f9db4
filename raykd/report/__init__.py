"""Report stage: the accuracy-vs-size Pareto front of a sweep, as CSV, tables and a plot.

Inputs are plain :class:`~raykd.records.TrialResult` / :class:`~raykd.records.TeacherSummary`
records; this package never imports Ray, torch or MLflow, and imports rich and matplotlib only
inside the functions that draw.
"""

from raykd.report.pareto import hypervolume, pareto_mask
from raykd.report.plot import plot_front
from raykd.report.render import Report, pareto_frame, trials_frame, write_report
from raykd.report.stages import markdown_stage_times, stage_times_frame, stage_times_table, write_stage_times
from raykd.report.tables import front_table, markdown_front
from raykd.report.tasks import (
    TaskFronts,
    TaskInfo,
    markdown_task_fronts,
    plot_task_fronts,
    task_fronts_table,
    write_task_fronts,
)

__all__ = [
    "pareto_mask",
    "hypervolume",
    "Report",
    "trials_frame",
    "pareto_frame",
    "write_report",
    "front_table",
    "markdown_front",
    "plot_front",
    "TaskInfo",
    "TaskFronts",
    "write_task_fronts",
    "task_fronts_table",
    "markdown_task_fronts",
    "plot_task_fronts",
    "stage_times_frame",
    "stage_times_table",
    "markdown_stage_times",
    "write_stage_times",
]
