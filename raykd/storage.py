"""The storage folder a sweep writes to, checked before it writes (no heavy imports)."""

from __future__ import annotations

import os
from pathlib import Path

from raykd.errors import RaykdInputError

__all__ = ["check_storage", "check_writable_folder"]


def check_storage(storage: str) -> Path:
    """The storage folder as an absolute path, if a sweep can create and write it.

    Raises:
        RaykdInputError: an object-store URI, a file where the folder (or its ``cache``) would be,
            or a folder this user cannot write.
    """
    if "://" in str(storage):
        raise RaykdInputError(f"--storage {storage}: object stores are not supported yet; give a folder (on a "
                              "multi-node cluster, a shared filesystem mounted on every node)")
    path = Path(storage).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise RaykdInputError(f"--storage {path} is a file, not a folder; give a folder (raykd keeps sweeps, the "
                              "cache and mlflow.db in it)")
    check_writable_folder(path, f"--storage {path}")
    cache = path / "cache"
    if cache.exists() and not cache.is_dir():
        raise RaykdInputError(f"--storage {path}: {cache} is a file, but raykd keeps its cache folder there; move it")
    return path


def check_writable_folder(folder: Path, what: str) -> None:
    """``folder`` is a writable folder, or can be created as one (its nearest existing parent is).

    Raises:
        RaykdInputError: a file stands where the folder would be, or nothing can be written there.
    """
    ancestor = folder
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise RaykdInputError(f"{what}: {ancestor} is a file, not a folder; give a folder path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RaykdInputError(f"{what}: {ancestor} is not writable by this user; give a folder you can write to")
