"""Transfer sets: what students train on besides the task's own examples."""
