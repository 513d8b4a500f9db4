"""Shared test set-up: offline hubs, Ray without token auth, real data from ../shared."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION", "0")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GLUE = SHARED / "data" / "glue"
TEACHER = SHARED / "models" / "minilm-sst2"
BASE = SHARED / "models" / "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder with real GLUE data and weights."""
    return SHARED


def tiny_space_raw(changes: dict | None = None) -> dict:
    """The tests' 2-trial SST-2 space (tests/spaces/sst2_tiny.yaml) with absolute paths.

    Args:
        changes: dotted key -> value, e.g. ``{"budget.num_samples": 1}``.
    """
    import yaml

    raw = yaml.safe_load((REPO / "tests" / "spaces" / "sst2_tiny.yaml").read_text())
    raw["data"]["glue_dir"] = str(GLUE)
    raw["teacher"]["path"] = str(TEACHER)
    for dotted, value in (changes or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return raw
