"""Where MLflow writes, checked before a sweep starts (no MLflow import: ``raykd validate`` stays fast).

A sweep's tracking URI is a local SQLite store (``sqlite:///<absolute path>``, the default
``<storage>/mlflow.db``), a tracking server (``http(s)://host:port``), or another database URI
MLflow supports (``postgresql://...``). MLflow 3's file store (``./mlruns``, ``file:``) raises at
first use, so it is refused here with the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

from raykd.errors import RaykdInputError
from raykd.storage import check_writable_folder

__all__ = ["default_tracking_uri", "check_tracking_uri", "sqlite_path"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def default_tracking_uri(storage: str | Path) -> str:
    """``sqlite:///<absolute storage>/mlflow.db`` (MLflow needs absolute SQLite paths)."""
    return f"sqlite:///{Path(storage).resolve() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other URIs)."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Make sure MLflow can write where ``uri`` says, without writing anything.

    Raises:
        RaykdInputError: an ``http(s)`` server does not answer its ``/health`` endpoint; a SQLite
            path that is relative, whose folder cannot be created or written, or that names a file
            that is not a SQLite database; a file store URI (``file:`` or a bare path).
    """
    if uri.startswith(("http://", "https://")):
        _check_server(uri, timeout_s)
        return
    if uri.startswith("sqlite:"):
        _check_sqlite(uri)
        return
    if uri.startswith("file:") or "://" not in uri:
        raise RaykdInputError(f"--mlflow-uri {uri}: MLflow 3's file store (./mlruns) is deprecated and raises; give "
                              "sqlite:////ABSOLUTE/PATH/mlflow.db or an http:// tracking server")


def _check_sqlite(uri: str) -> None:
    path = sqlite_path(uri)
    if path is None or not path.is_absolute():
        raise RaykdInputError(f"--mlflow-uri {uri}: a SQLite store needs an absolute path, "
                              "sqlite:////ABSOLUTE/PATH/mlflow.db (four slashes)")
    if path.exists():
        if not path.is_file():
            raise RaykdInputError(f"--mlflow-uri {uri}: {path} is a folder, not a database file")
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_MAGIC))
        if head and head != _SQLITE_MAGIC:
            raise RaykdInputError(f"--mlflow-uri {uri}: {path} exists and is not a SQLite database; give another path")
        if not os.access(path, os.W_OK):
            raise RaykdInputError(f"--mlflow-uri {uri}: {path} is not writable")
        return
    check_writable_folder(path.parent, f"--mlflow-uri {uri}: the folder of {path.name}")


def _check_server(uri: str, timeout_s: float) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        problem = getattr(err, "reason", None) or err
    raise RaykdInputError(f"MLflow tracking server {uri} is not reachable ({problem}); start it "
                          "(mlflow server --host ... --port ...) or drop --mlflow-uri to use the local store")
