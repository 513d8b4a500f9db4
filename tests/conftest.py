"""Shared test set-up: offline hubs, Ray without token auth, real data from ../shared."""

import os
import sys
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


def write_space(path: Path, raw: dict) -> Path:
    """Write a space mapping to ``path`` as YAML and return the path."""
    import yaml

    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def raykd_process(args: list[str], log: Path, **popen):
    """Start the ``raykd`` CLI in its own process group (so a test can kill it and its Ray whole)."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "raykd", *args], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=REPO, **popen)


def trial_results(sweep_dir: Path) -> dict[str, list[dict]]:
    """Trial id -> the results Tune has written so far (readable while the sweep runs)."""
    import json

    found = {}
    for path in sorted((sweep_dir / "tune").glob("trial-*/result.json")):
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written
                break
        found[path.parent.name.removeprefix("trial-")] = rows
    return found


def latest_checkpoints(sweep_dir: Path) -> dict[str, dict]:
    """Trial id -> the metrics of its newest *committed* checkpoint, read live from storage.

    A worker writes an epoch's checkpoint files before ``report`` returns, but Ray Train commits it
    (the checkpoint a restart resumes from) only once the controller has collected that report and
    written ``checkpoint_manager_snapshot.json``; Tune copies ``result.json`` to storage only every
    few seconds. Tests that act on a running trial's progress read this.
    """
    import json

    found = {}
    for snapshot in sorted((sweep_dir / "train_runs").glob("trial-*/checkpoint_manager_snapshot.json")):
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
        except (json.JSONDecodeError, FileNotFoundError):  # being rewritten
            continue
        if latest:
            found[snapshot.parent.name.removeprefix("trial-")] = latest["metrics"]
    return found


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.5, process=None, log: Path | None = None):
    """Poll ``condition()`` until it returns something truthy; fail the test after ``timeout_s``.

    With ``process`` (a Popen) the wait fails at once if that process exits first; the tail of its
    ``log`` goes into the failure message either way, so a CI log says why.
    """
    import time

    def tail() -> str:
        return f"\n--- last lines of {log} ---\n{log.read_text()[-4000:]}" if log and log.exists() else ""

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process exited with {process.returncode} while waiting for {what}{tail()}")
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}{tail()}")


@pytest.fixture(scope="session")
def tiny_stage(tmp_path_factory):
    """The teacher stage of the tiny SST-2 space, built once: ``(space, inputs, stage, cache folder)``.

    Five tests run that space (2,000 training and 872 dev sentences through the real teacher, about
    15 s each time on two cores). They share this stage and its cache as sweeps sharing one storage
    folder do: this build is the real stage; sweeps read its cache back by the same key through
    :func:`storage_with_cache`.
    """
    from raykd.checks import check_task_inputs
    from raykd.config import parse_space
    from raykd.sweep.stage import build_stage
    from raykd.sweep.teachers import plan_teachers

    cache = tmp_path_factory.mktemp("tiny-cache")
    space = parse_space(tiny_space_raw())
    (name, task), = check_task_inputs(space).items()  # as a sweep does: the teacher checked, then the stage
    check = plan_teachers(space, {name: task}, cache)[name].check
    return space, task.inputs, build_stage(task.space, task.inputs, cache, progress=False, teacher_check=check), cache


@pytest.fixture(scope="session")
def tiny_cache(tiny_stage) -> Path:
    """The cache folder of :func:`tiny_stage` (the teacher's soft targets for the tiny SST-2 space)."""
    return tiny_stage[3]


def storage_with_cache(storage: Path, cache: Path) -> Path:
    """Create the sweep storage folder ``storage`` with its ``cache/`` linked to the shared ``cache``.

    Everything else a sweep writes there (sweep folders, ``mlflow.db``) stays the test's own.
    """
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "cache").symlink_to(cache, target_is_directory=True)
    return storage


@pytest.fixture(scope="session")
def method_sweep(tmp_path_factory):
    """One real 4-trial sweep shared by the data-free and low-data Ray tests (one Ray start, two waves).

    SST-2 with 16 training sentences per class, 200 dev sentences, 300 QNLI sentences as the
    out-of-domain corpus: zero_shot and as_dfd (data-free) run first, then the two arms of
    generation (augment none and tang), which ask for the same generated set at the same time.

    Returns:
        ``(storage, outcome, lines, actors)``: the storage folder, the :class:`SweepOutcome`, printed
        lines, and the class names of every actor the local Ray instance ran.
    """
    import ray
    from ray.util.state import list_actors

    from raykd.config import parse_space
    from raykd.sweep.run import SweepOptions, run_sweep

    raw = tiny_space_raw({"name": "methods-ray", "data.ood": str(GLUE / "QNLI" / "dev.tsv"), "data.ood_limit": 300,
                          "data.dev_limit": 200, "data.train_size": 16, "training.epochs": 1,
                          "training.steps_per_epoch": 8, "training.batch_size": 16, "budget.num_samples": 4})
    raw["data"].pop("train_limit")
    raw["methods"] = {
        "zero_shot": {"generator": "noise", "gen_space": "gumbel_vocab", "gen_length": 8, "student_steps": 4},
        "as_dfd": {"bank_per_class": 8, "bank_steps": 5, "gen_length": 8, "adv_steps": 2, "projection": True},
        "generation": {"gen_layers": 1, "gen_dim": 32, "gen_heads": 2, "gen_epochs": 2, "multiple": 2.0,
                       "augment": ["none", "tang"], "n_iter": 2},
    }
    raw["students"] = {"bilstm": {"embedding_dim": 24, "hidden_dim": 32, "mlp_dim": 32}}
    storage = tmp_path_factory.mktemp("runs")
    lines = []
    try:
        outcome = run_sweep(parse_space(raw), SweepOptions(storage=str(storage), num_cpus=2, echo=lines.append),
                            estimate=False)  # the estimate is the cluster stage sweep's and test_estimate's subject
        # the instance this sweep started, by its address (another Ray left on the machine must not be asked)
        actors = {a.class_name for a in list_actors(address=ray.get_runtime_context().gcs_address, limit=10_000)}
    finally:
        ray.shutdown()
    return storage, outcome, lines, actors


def token_batch(lengths: list[int], is_pair: bool = False, width: int | None = None, vocab: int = 50, pad: int = 0):
    """A right-padded student batch ``(input_ids, attention_mask, token_type_ids)``, each ``[B, width]``, of
    random ids in ``[1, vocab)`` (its own seeded generator); pairs split each row's length into a | b."""
    import torch

    gen = torch.Generator().manual_seed(0)
    width = width or max(lengths)
    ids = torch.randint(1, vocab, (len(lengths), width), generator=gen)
    mask, types = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        if is_pair:
            types[row, n // 2:n] = 1
    return ids.masked_fill(mask == 0, pad), mask, types


def pad_batch(batch, extra: int):
    """``batch`` with ``extra`` more padding columns on the right."""
    import torch

    return tuple(torch.cat([t, torch.zeros(t.shape[0], extra, dtype=t.dtype)], dim=1) for t in batch)


# --------------------------------------------------------------------------------------------
# The no-write-after-input-error harness

_WRITE_EVENTS = {"os.mkdir": 1, "os.rename": 2, "os.remove": 1, "os.rmdir": 1, "os.symlink": 2, "os.link": 2,
                 "os.truncate": 1, "os.chmod": 1, "os.utime": 1, "shutil.copyfile": 2, "shutil.copytree": 2,
                 "shutil.rmtree": 1, "shutil.move": 2, "sqlite3.connect": 1}
"""Audit events that change the filesystem, with how many leading arguments are paths."""
_WATCH: dict = {"roots": None, "events": None}


def _audit(event: str, args: tuple) -> None:
    roots = _WATCH["roots"]
    if roots is None:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
        paths = [path] if writes else []
    else:
        paths = list(args[:_WRITE_EVENTS.get(event, 0)])
    for path in paths:
        if not isinstance(path, (str, bytes, os.PathLike)):
            continue
        text = os.path.abspath(os.fsdecode(path))
        if "__pycache__" not in text and any(text == r or text.startswith(r + os.sep) for r in roots):
            import traceback

            where = "".join(traceback.format_stack(limit=8)[:-2])
            _WATCH["events"].append(f"{event} {text}\n{where}")


sys.addaudithook(_audit)


class WriteWatch:
    """Records every filesystem write under ``roots`` while active (a ``sys.addaudithook`` hook).

    Attributes:
        events: one entry per write: the audit event, the path and the Python stack that made it.
    """

    def __init__(self, roots):
        self.roots = tuple(os.path.abspath(str(r)) for r in roots)
        self.events: list[str] = []

    def __enter__(self) -> "WriteWatch":
        _WATCH.update(roots=self.roots, events=self.events)
        return self

    def __exit__(self, *exc) -> None:
        _WATCH.update(roots=None, events=None)


def invoke_cli(args: list[str], watch_roots) -> tuple:
    """Run the raykd CLI in-process (click's runner) while recording writes under ``watch_roots``.

    Returns:
        ``(result, writes)``: click's result and the writes made (audit event, path, stack).
    """
    from click.testing import CliRunner

    from raykd.cli import main

    with WriteWatch(watch_roots) as watch:
        result = CliRunner().invoke(main, args)
    return result, watch.events


def assert_input_error(result, writes, fragments=()) -> str:
    """The contract for bad input: exit code 2, one ``error: ...`` line on stderr, no traceback, nothing written.

    Returns:
        The error line.
    """
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout, result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert not writes, "input error raised after a write:\n" + "\n".join(writes[:3])
    return lines[0]


def teacher_copy(folder: Path, source: Path = TEACHER, config: dict | None = None, drop: tuple[str, ...] = ()) -> Path:
    """A model folder at ``folder`` whose files link to ``source``'s, with ``config.json`` changed by ``config``.

    Args:
        config: keys to set in ``config.json`` (the rest as in ``source``).
        drop: file names to leave out (``"model.safetensors"``, ``"tokenizer.json"``, ...).
    """
    import json

    folder.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and path.name not in drop and path.name != "config.json":
            (folder / path.name).symlink_to(path.resolve())
    if "config.json" not in drop:
        settings = {**json.loads((source / "config.json").read_text()), **(config or {})}
        (folder / "config.json").write_text(json.dumps(settings))
    return folder


def stop_after_checks(monkeypatch) -> None:
    """Make ``run_sweep`` / ``resume_sweep`` fail right after :func:`~raykd.sweep.preflight.preflight` passes
    (an AssertionError, exit code 1 through the CLI), so a bad-input test never starts a sweep."""
    import raykd.sweep.run as run

    real = run.preflight

    def guarded(*args, **kwargs):
        real(*args, **kwargs)
        raise AssertionError("the bad input passed the pre-sweep checks; the sweep would have gone on")

    monkeypatch.setattr(run, "preflight", guarded)


def http_healthy(url: str) -> bool:
    """Whether a server (MLflow) answers ``<url>/health`` with 200."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
