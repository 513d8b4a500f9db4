"""The data layer: the GLUE task table, readers for every data source, and task metrics.

``import raykd.data`` loads numpy and pandas only: never torch, Ray or MLflow. The Hugging Face
``datasets`` package is imported inside :func:`read_hub`, scikit-learn and SciPy inside the
metric functions.
"""

from raykd.data.metrics import METRIC_NAMES, compute_metrics, majority_baseline
from raykd.data.readers import glue_split_path, read_file, read_glue, read_hub
from raykd.data.tasks import GLUE_TASKS, TaskSpec, custom_task, get_task

__all__ = [
    "TaskSpec",
    "GLUE_TASKS",
    "get_task",
    "custom_task",
    "glue_split_path",
    "read_glue",
    "read_file",
    "read_hub",
    "METRIC_NAMES",
    "compute_metrics",
    "majority_baseline",
]
