"""The ``raykd`` command line: thin click commands over library functions.

Each command imports what it needs inside its body, so ``raykd --help`` starts in a blink and
imports neither torch, Ray nor MLflow. Bad input (:class:`~raykd.errors.RaykdInputError`) becomes
one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import sys

import click

from raykd import __version__

__all__ = ["main"]


def _user_errors(command):
    """Turn RaykdInputError into ``error: <one line>`` and exit code 2, RaykdStageError into one line and 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from raykd.errors import RaykdInputError, RaykdStageError

        try:
            return command(*args, **kwargs)
        except RaykdInputError as err:
            click.echo(f"error: {_one_line(err)}", err=True)
            sys.exit(2)
        except RaykdStageError as err:
            click.echo(f"error: {_one_line(err)}", err=True)
            sys.exit(1)

    return wrapper


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _parse_overrides(pairs: tuple[str, ...]) -> dict:
    import yaml

    from raykd.errors import RaykdInputError

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RaykdInputError(f"--set {pair}: write KEY=VALUE with a dotted key, e.g. --set budget.num_samples=4")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise RaykdInputError(f"--set {pair}: the value is not valid YAML; quote it or fix it") from None
    return overrides


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="raykd")
def main() -> None:
    """Find the best small students a fine-tuned teacher can be distilled into.

    A sweep searches over distillation methods, student architectures (BiLSTM, small
    transformers), temperatures and training settings; each trial runs on Ray Train workers,
    Optuna's multi-objective search picks the next one, every trial lands in MLflow, and the
    result is an accuracy-vs-parameters Pareto front.

    \b
    Typical use:
      raykd spaces                                          # the bundled search spaces
      raykd validate --space search_spaces/sst2_demo.yaml   # check, print the plan
      raykd sweep --space search_spaces/sst2_demo.yaml      # run it
      raykd report raykd_runs/sst2-demo-<time>              # re-render a sweep's report
      raykd teacher fine-tune --task rte --base ../shared/models/all-MiniLM-L6-v2 \\
            --glue-dir ../shared/data/glue --out teachers/rte
    """


_space_option = click.option("--space", "space_path", required=True, metavar="FILE",
                             help="Search-space YAML, or a bundled space's name (see raykd spaces).")


def _run_options(command):
    """The options ``raykd sweep`` and ``raykd validate`` share: validate checks them exactly as a sweep would."""
    options = [
        click.option("--num-samples", type=click.IntRange(min=1), help="Trials to run (default: budget.num_samples)."),
        click.option("--max-concurrent", type=click.IntRange(min=1),
                     help="Trials at once (default: budget.max_concurrent, else cluster CPUs / CPUs per trial)."),
        click.option("--storage", default="./raykd_runs", show_default=True, metavar="DIR",
                     help="Where sweeps, the teacher-output cache and the default MLflow store go. "
                          "On a multi-node cluster use shared storage."),
        click.option("--address", metavar="ADDR", help="Attach to a running Ray cluster ('auto' or host:port) "
                                                        "instead of starting a local one."),
        click.option("--mlflow-uri", metavar="URI",
                     help="MLflow tracking URI: sqlite:////ABS/PATH.db or http://host:port "
                          "(default: sqlite:///<storage>/mlflow.db)."),
        click.option("--num-cpus", type=click.IntRange(min=1),
                     help="CPUs for trial workers when raykd starts a local Ray instance (default: all cores)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
_deadline_option = click.option("--deadline", metavar="DURATION",
                                help="Warn when the cost estimate does not fit in this long: 90m, 24h, 3600s, 1.5d.")
_set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                           help="Override a setting of the space by dotted key, e.g. --set budget.num_samples=4 "
                                "(repeatable; values are YAML).")


@main.command()
@click.option("--space", "space_path", metavar="FILE",
              help="Search-space YAML, or a bundled space's name (see raykd spaces).")
@_set_option
@click.option("--resume", "resume_dir", metavar="DIR",
              help="Continue an interrupted sweep folder: finished trials are kept, unfinished ones restart "
                   "from their last checkpoint, then the remaining trials run (uses DIR/space.yaml).")
@_run_options
@click.option("--no-estimate", is_flag=True, help="Do not print the per-stage cost estimate before the first stage "
                                                  "(it calibrates for a few seconds).")
@_deadline_option
@_user_errors
def sweep(space_path, overrides, resume_dir, num_samples, max_concurrent, storage, address, mlflow_uri,
          num_cpus, no_estimate, deadline) -> None:
    """Run a sweep: distil, search, track, and print the Pareto front.

    Everything is checked first, exactly as `raykd validate` checks it: the space, the data files,
    columns and labels, every teacher (loaded and measured on dev against the majority class), the
    storage folder, the MLflow URI and the resources a trial asks for. Nothing is written and Ray
    does not start if something is wrong. Then it prints how long each stage will take (a few
    seconds of calibration on the hardware; --no-estimate skips it, --deadline warns when it will
    not fit), the teacher stage fine-tunes the teachers a space asks for (cached), the teacher's
    soft targets are computed (cached), and the trials run. At the end each stage's estimate is
    shown beside its actual time (also in sweep.json and stages.csv).

    Writes <storage>/<name>-<time>/ with trials.csv, pareto.csv, pareto.png and pareto.html, and one
    MLflow parent run with a child run per trial. A sweep stopped by a crash, Ctrl-C or a lost
    driver continues with --resume <that folder>.
    """
    from raykd.sweep.estimate import parse_duration
    from raykd.sweep.run import resume_sweep, run_sweep

    deadline_s = parse_duration(deadline) if deadline else None
    options = _options(storage, num_samples, max_concurrent, address, mlflow_uri, num_cpus)
    if resume_dir:
        _check_resume_args(space_path, overrides, num_samples, max_concurrent)
        resume_sweep(resume_dir, options, estimate=not no_estimate, deadline_s=deadline_s)
        return
    run_sweep(_load_space(space_path, overrides), options, estimate=not no_estimate, deadline_s=deadline_s)


def _options(storage, num_samples, max_concurrent, address, mlflow_uri, num_cpus):
    from raykd.sweep.preflight import SweepOptions

    return SweepOptions(storage=storage, num_samples=num_samples, max_concurrent=max_concurrent, address=address,
                        mlflow_uri=mlflow_uri, num_cpus=num_cpus, echo=click.echo, live=sys.stdout.isatty())


def _check_resume_args(space_path, overrides, num_samples, max_concurrent) -> None:
    from raykd.errors import RaykdInputError

    if space_path or overrides or num_samples or max_concurrent:
        raise RaykdInputError("--resume continues a sweep with its own space.yaml and budget; "
                              "drop --space, --set, --num-samples and --max-concurrent")


def _load_space(space_path, overrides):
    from raykd.config import load_space
    from raykd.errors import RaykdInputError

    if not space_path:
        raise RaykdInputError("give --space FILE to start a sweep, or --resume DIR to continue one")
    return load_space(space_path, _parse_overrides(overrides))


@main.command()
@_user_errors
def spaces() -> None:
    """List the search spaces that ship with raykd (pass a name to --space, adapt it with --set)."""
    from raykd.spaces import bundled_dir, bundled_spaces

    found = bundled_spaces()
    if not found:
        click.echo(f"no bundled spaces in {bundled_dir()} (they ship with a source checkout of raykd)")
        return
    example = next((s.name for s in found if s.name == "sst2_demo"), found[0].name)
    for space in found:
        click.echo(f"{space.name:16s} task(s) {space.task}; methods {', '.join(space.methods)}")
        click.echo(f"{'':16s} {space.summary}")
    click.echo(f"files in {bundled_dir()}; run one with: raykd sweep --space {example} "
               "[--set data.glue_dir=DIR --set budget.num_samples=N]")


@main.command()
@click.option("--space", "space_path", metavar="FILE",
              help="Search-space YAML, or a bundled space's name (see raykd spaces).")
@_set_option
@click.option("--resume", "resume_dir", metavar="DIR", help="Check a sweep folder that --resume would continue.")
@_run_options
@click.option("--estimate", "show_estimate", is_flag=True,
              help="Then print how long each stage will take, from a few seconds of calibration on this machine "
                   "(with --address: as Ray tasks on the cluster's nodes).")
@_deadline_option
@_user_errors
def validate(space_path, overrides, resume_dir, num_samples, max_concurrent, storage, address, mlflow_uri,
             num_cpus, show_estimate, deadline) -> None:
    """Run every check `raykd sweep` runs, write nothing, and print the trial plan.

    Takes the same options as `raykd sweep`, because they are checked too: the storage folder, the
    MLflow URI, and the resources a trial asks for against the local Ray instance (--num-cpus).
    Ready teachers are loaded and measured on dev (a teacher no better than the majority class is
    refused); a teacher to fine-tune shows its teacher stage and where it is cached. Ray is not
    started. --estimate adds the per-stage cost estimate (--deadline implies it and warns when
    the sweep will not fit).
    """
    from raykd.sweep.estimate import parse_duration
    from raykd.sweep.preflight import preflight, read_resume_meta

    deadline_s = parse_duration(deadline) if deadline else None
    options = _options(storage, num_samples, max_concurrent, address, mlflow_uri, num_cpus)
    if resume_dir:
        from pathlib import Path

        from raykd.config import load_space

        _check_resume_args(space_path, overrides, num_samples, max_concurrent)
        meta = read_resume_meta(resume_dir)
        pre = preflight(load_space(Path(resume_dir) / "space.yaml"), options, resume_dir=resume_dir, meta=meta)
    else:
        pre = preflight(_load_space(space_path, overrides), options)
    click.echo(pre.describe())
    if show_estimate or deadline_s:
        from raykd.sweep.estimate import deadline_warnings, estimate_sweep

        estimate = estimate_sweep(pre)
        click.echo(estimate.describe())
        for line in deadline_warnings(estimate, deadline_s, pre.num_samples) if deadline_s else ():
            click.echo(line)


@main.command()
@click.argument("sweep_dir", type=click.Path(file_okay=False))
@click.option("--no-mlflow", is_flag=True, help="Do not log the re-rendered report to the sweep's MLflow run.")
@_user_errors
def report(sweep_dir, no_mlflow) -> None:
    """Re-render the report of a finished or interrupted sweep folder.

    Reads the trials Tune recorded in SWEEP_DIR, rewrites trials.csv, pareto.csv and pareto.png,
    prints the Pareto front and (unless --no-mlflow) logs the files to the sweep's parent run.
    """
    from raykd._quiet import quiet_libraries
    from raykd.sweep.finish import finish_sweep, read_sweep_meta

    quiet_libraries()
    meta = read_sweep_meta(sweep_dir)
    tracker = None
    if not no_mlflow and meta.get("mlflow_uri"):
        from raykd.tracking.mlflow import SweepTracker

        tracker = SweepTracker.for_experiment(meta["mlflow_uri"], f"raykd-{meta['name']}")
    finish_sweep(sweep_dir, tracker=tracker, end_parent=False, echo=click.echo)


@main.group()
def teacher() -> None:
    """Teachers: fine-tune a base encoder into a task's teacher."""


@teacher.command("fine-tune")
@click.option("--task", metavar="NAME", help="A GLUE task (sst2, cola, mrpc, stsb, qqp, mnli, qnli, rte, wnli), or your "
                                            "own task's name with --train/--dev.")
@click.option("--base", metavar="PATH_OR_ID", help="Pretrained encoder folder or hub id.")
@click.option("--out", metavar="DIR", help="Folder to write the teacher to (with --space: default the sweep's cache, "
                                          "so a sweep of that space reuses it).")
@click.option("--glue-dir", metavar="DIR", help="glue_data folder for a GLUE task (default: the hub's GLUE copy).")
@click.option("--train", "train_file", metavar="FILE", help="Your training file (CSV, TSV or JSONL).")
@click.option("--dev", "dev_file", metavar="FILE", help="Your dev file, same columns.")
@click.option("--text-column", "text_columns", multiple=True, metavar="NAME",
              help="Text column of your files; give it twice for sentence pairs.")
@click.option("--label-column", metavar="NAME", help="Label column of your files (default: label).")
@click.option("--labels", metavar="LIST_OR_MAP",
              help="The labels, in the new head's id order: 'negative,positive', or your files' values mapped to "
                   "names: '0=negative,1=positive'. Omit for regression (--metric pearson).")
@click.option("--metric", type=click.Choice(["accuracy", "f1", "matthews", "pearson", "spearman"]),
              help="Metric of your own task (default accuracy).")
@click.option("--space", "space_path", metavar="FILE",
              help="Fine-tune exactly the teacher this space's teacher stage would (its base, data, labels and "
                   "fine_tune_* settings); the other options must then be left out, except --out and --storage.")
@click.option("--storage", default="./raykd_runs", show_default=True, metavar="DIR",
              help="With --space: the storage whose cache the teacher goes to.")
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the training split (default 3).")
@click.option("--lr", type=float, help="Peak learning rate (default 5e-5).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per step (default 32).")
@click.option("--max-length", type=click.IntRange(min=8), help="Tokens per example (default 128).")
@click.option("--train-limit", type=click.IntRange(min=1), help="Fine-tune on a seeded sample of this many examples.")
@click.option("--seed", type=int, help="Seed of the head's initialisation and the batch order (default 0).")
@_user_errors
def fine_tune_command(task, base, out, glue_dir, train_file, dev_file, text_columns, label_column, labels, metric,
                      space_path, storage, epochs, lr, batch_size, max_length, train_limit, seed) -> None:
    """Fine-tune a base encoder into a teacher; prints the dev metric and writes a card.

    \b
    A GLUE task:
      raykd teacher fine-tune --task rte --base ../shared/models/all-MiniLM-L6-v2 \\
          --glue-dir ../shared/data/glue --out teachers/rte
    Your own labelled files:
      raykd teacher fine-tune --task news --base ../shared/models/all-MiniLM-L6-v2 \\
          --train news_train.csv --dev news_dev.csv --text-column text --label-column label \\
          --labels World,Sports,Business,Sci/Tech --out teachers/news
    The teacher a space's teacher stage would build (into the cache the sweep reads):
      raykd teacher fine-tune --space news.yaml

    Every input is checked first, as `raykd validate` checks a space; nothing is written if one is wrong.
    """
    from raykd._quiet import quiet_libraries
    from raykd.sweep.teachers import fine_tune_teacher

    quiet_libraries()
    flags = {"--task": task, "--base": base, "--glue-dir": glue_dir, "--train": train_file, "--dev": dev_file,
             "--text-column": text_columns, "--label-column": label_column, "--labels": labels, "--metric": metric,
             "--epochs": epochs, "--lr": lr, "--batch-size": batch_size, "--max-length": max_length,
             "--train-limit": train_limit, "--seed": seed}
    if space_path:
        space = _space_for_fine_tune(space_path, flags)
    else:
        space = _fine_tune_space(flags)
    if not out and not space_path:
        from raykd.errors import RaykdInputError

        raise RaykdInputError("--out: give the folder to write the teacher to")
    result = fine_tune_teacher(space, out=out, storage=storage, echo=click.echo)
    click.echo(f"teacher written to {result.folder}; dev: {result.summary}")


def _space_for_fine_tune(space_path: str, flags: dict):
    from raykd.config import load_space
    from raykd.errors import RaykdInputError

    given = [name for name, value in flags.items() if value]
    if given:
        raise RaykdInputError(f"--space fine-tunes the teacher exactly as the space says; drop {', '.join(given)} "
                              "(change the space instead)")
    space = load_space(space_path)
    if space.multi_task or not space.teacher.base or not space.teacher.fine_tune:
        raise RaykdInputError(f"{space_path}: its teacher section needs base and fine_tune: true (a single-task "
                              "space whose teacher raykd fine-tunes)")
    return space


def _fine_tune_space(flags: dict):
    """The options as a single-task space with a teacher to fine-tune, so the sweep's own checks read them."""
    from raykd.config import parse_space
    from raykd.data.tasks import GLUE_TASKS, normalise_task_name
    from raykd.errors import RaykdInputError

    task, base = flags["--task"], flags["--base"]
    if not task or not base:
        raise RaykdInputError("give --task and --base (or --space FILE)")
    data: dict = {"max_length": flags["--max-length"] or 128}
    if flags["--train"] or flags["--dev"]:
        if flags["--glue-dir"]:
            raise RaykdInputError("give either --glue-dir (a GLUE task) or --train/--dev (your files), not both")
        data.update(train=flags["--train"], dev=flags["--dev"], text_columns=list(flags["--text-column"]) or None,
                    label_column=flags["--label-column"] or "label", metric=flags["--metric"])
        if flags["--labels"]:
            data["labels"] = _parse_labels(flags["--labels"])
    elif normalise_task_name(task) not in GLUE_TASKS:
        raise RaykdInputError(f"unknown task '{task}'; valid GLUE tasks: {', '.join(GLUE_TASKS)}; for your own task "
                              "give its files with --train and --dev (and --text-column, --labels)")
    elif flags["--glue-dir"]:
        data["glue_dir"] = flags["--glue-dir"]
    if flags["--train-limit"]:
        data["train_limit"] = flags["--train-limit"]
    teacher = {"base": base, "fine_tune": True, "fine_tune_epochs": flags["--epochs"] or 3,
               "fine_tune_lr": flags["--lr"] or 5e-5, "fine_tune_batch_size": flags["--batch-size"] or 32}
    raw = {"name": "fine-tune", "task": task, "data": {k: v for k, v in data.items() if v is not None},
           "teacher": teacher, "methods": {"supervised": {}}, "students": {"bilstm": {}}, "seed": flags["--seed"] or 0}
    return parse_space(raw)


def _parse_labels(text: str):
    """``a,b,c`` -> a list; ``0=negative,1=positive`` -> a mapping (as data.labels takes them)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if any("=" in item for item in items):
        from raykd.errors import RaykdInputError

        pairs = [item.partition("=") for item in items]
        if not all(sep and key.strip() and value.strip() for key, sep, value in pairs):
            raise RaykdInputError(f"--labels {text}: write every label as value=name, e.g. 0=negative,1=positive")
        return {key.strip(): value.strip() for key, _, value in pairs}
    return items


if __name__ == "__main__":
    main()
