"""Data-free distillation: the trainer protocol, generated samples, the loop (see :mod:`raykd.datafree.base`)."""
