"""Distillation methods, one file each, registered by their YAML name in :mod:`raykd.registry`."""

from raykd.methods.base import Method

__all__ = ["Method"]
