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
    """Turn RaykdInputError into ``error: <one line>`` and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from raykd.errors import RaykdInputError

        try:
            return command(*args, **kwargs)
        except RaykdInputError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


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
@click.option("--num-samples", type=click.IntRange(min=1), help="Trials to run (default: budget.num_samples).")
@click.option("--max-concurrent", type=click.IntRange(min=1),
              help="Trials at once (default: budget.max_concurrent, else cluster CPUs / CPUs per trial).")
@click.option("--storage", default="./raykd_runs", show_default=True, metavar="DIR",
              help="Where sweeps, the teacher-output cache and the default MLflow store go. "
                   "On a multi-node cluster use shared storage.")
@click.option("--address", metavar="ADDR", help="Attach to a running Ray cluster ('auto' or host:port) "
                                                 "instead of starting a local one.")
@click.option("--mlflow-uri", metavar="URI", help="MLflow tracking URI (default: sqlite:///<storage>/mlflow.db).")
@click.option("--num-cpus", type=click.IntRange(min=1),
              help="CPUs for trial workers when raykd starts a local Ray instance (default: all cores).")
@_user_errors
def sweep(space_path, overrides, resume_dir, num_samples, max_concurrent, storage, address, mlflow_uri,
          num_cpus) -> None:
    """Run a sweep: distil, search, track, and print the Pareto front.

    Everything the space names (data files, columns, teacher, labels) is checked first; nothing is
    written and Ray does not start if something is wrong. Writes <storage>/<name>-<time>/ with
    trials.csv, pareto.csv and pareto.png, and one MLflow parent run with a child run per trial.
    A sweep stopped by a crash, Ctrl-C or a lost driver continues with --resume <that folder>.
    """
    from raykd.errors import RaykdInputError
    from raykd.sweep.run import SweepOptions, resume_sweep, run_sweep

    options = SweepOptions(storage=storage, num_samples=num_samples, max_concurrent=max_concurrent,
                           address=address, mlflow_uri=mlflow_uri, num_cpus=num_cpus, echo=click.echo,
                           live=sys.stdout.isatty())
    if resume_dir:
        if space_path or overrides or num_samples or max_concurrent:
            raise RaykdInputError("--resume continues a sweep with its own space.yaml and budget; "
                                  "drop --space, --set, --num-samples and --max-concurrent")
        resume_sweep(resume_dir, options)
        return
    if not space_path:
        raise RaykdInputError("give --space FILE to start a sweep, or --resume DIR to continue one")
    from raykd.config import load_space

    run_sweep(load_space(space_path, _parse_overrides(overrides)), options)


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
@_space_option
@_set_option
@_user_errors
def validate(space_path, overrides) -> None:
    """Check a search space and its files without starting Ray, and print the trial plan."""
    from raykd.checks import check_inputs
    from raykd.config import load_space
    from raykd.plan import describe_plan

    space = load_space(space_path, _parse_overrides(overrides))
    if space.multi_task:
        from raykd.checks import check_multi_task_inputs
        from raykd.plan import describe_multi_task_plan

        click.echo(describe_multi_task_plan(space, check_multi_task_inputs(space, click.echo)))
        return
    inputs = check_inputs(space)
    click.echo(describe_plan(space, inputs))


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
@click.option("--task", required=True, help="GLUE task (sst2, cola, mrpc, stsb, qqp, mnli, qnli, rte, wnli).")
@click.option("--base", required=True, metavar="PATH_OR_ID", help="Pretrained encoder folder or hub id.")
@click.option("--out", required=True, metavar="DIR", help="Folder to write the teacher to.")
@click.option("--glue-dir", metavar="DIR", help="glue_data folder (default: the hub's GLUE copy).")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--lr", type=float, default=5e-5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), default=128, show_default=True)
@click.option("--train-limit", type=click.IntRange(min=1), help="Fine-tune on a seeded sample of this many examples.")
@click.option("--seed", type=int, default=0, show_default=True)
@_user_errors
def fine_tune_command(task, base, out, glue_dir, epochs, lr, batch_size, max_length, train_limit, seed) -> None:
    """Fine-tune BASE into a teacher for TASK; prints the dev metric and writes a card."""
    from raykd.config import DataConfig
    from raykd.data.sources import load_split
    from raykd.data.tasks import get_task
    from raykd.sweep.stage import rich_progress
    from raykd._quiet import quiet_libraries
    from raykd.teachers.finetune import FineTuneSettings, fine_tune

    quiet_libraries()

    spec = get_task(task)
    data = DataConfig(glue_dir=glue_dir, hub=None if glue_dir else spec.hub[0], hub_config=spec.hub[1],
                      train_limit=train_limit)
    frames = {split: load_split(data, spec, split, seed) for split in ("train", *spec.eval_splits)}
    settings = FineTuneSettings(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, seed=seed)
    with rich_progress() as progress:
        metrics = fine_tune(spec, base, out, frames, settings, progress=progress)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    click.echo(f"teacher written to {out}; dev: {shown}")


if __name__ == "__main__":
    main()
