"""Teachers: load or fine-tune a Hugging Face sequence classifier, and cache its soft targets."""

from raykd.teachers.load import TeacherInfo, check_teacher_labels, inspect_teacher

__all__ = ["TeacherInfo", "inspect_teacher", "check_teacher_labels"]
