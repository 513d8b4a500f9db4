"""The Optuna define-by-run search space (:class:`raykd.sweep.space.DefineByRun`), without Ray.

The study is driven by hand (``study.ask()`` / ``study.tell()``) with the sampler a sweep uses, and
each trial's config is assembled the way Ray's OptunaSearch does it: ``{**trial.params,
**returned_constants}``, then nested on ``/``.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import math
import pickle
import warnings

import optuna
import pytest

from raykd.config import TRAINING_PARAMS, SweepConfig, parse_space
from raykd.domains import Choice, Domain, Fixed, Range
from raykd.methods import vanilla
from raykd.students import bilstm, transformer
from raykd.sweep.space import DefineByRun, sample

optuna.logging.set_verbosity(optuna.logging.WARNING)

WIDTH = ("hidden_size", "num_heads", "ffn_dim")
N_TRIALS = 40


def make_space() -> SweepConfig:
    """Both families, a conditional transformer (init random or teacher_skip), every domain form."""
    raw = {
        "name": "space-test",
        "task": "sst2",
        "data": {"glue_dir": "/unused"},
        "teacher": {"path": "/unused"},
        "methods": {"vanilla": {"kd_loss": ["kl", "mse"], "temperature": {"low": 1.0, "high": 8.0, "log": True},
                                "alpha": {"low": 0.0, "high": 1.0, "step": 0.25}}},
        "students": {
            "bilstm": {"hidden_dim": [32, 64], "embedding_dim": {"low": 32, "high": 128, "step": 32},
                       "dropout": {"low": 0.0, "high": 0.5}, "pooling": "mean"},
            "transformer": {"num_layers": {"low": 1, "high": 3}, "hidden_size": [64, 128], "num_heads": [2, 4],
                            "ffn_dim": 128, "dropout": [0.0, 0.1]},
        },
        "training": {"lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True}, "epochs": 2, "batch_size": [16, 32]},
        "seed": 0,
    }
    raw["students"]["transformer"]["init"] = ["random", "teacher_skip"]
    return parse_space(raw)


def make_study() -> optuna.Study:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True)
    return optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)


def nest(flat: dict) -> dict:
    """What Ray does with the merged flat dict: split keys on '/'."""
    config: dict = {}
    for key, value in flat.items():
        node = config
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


@pytest.fixture(scope="module")
def sampled():
    """40 trials: (params, returned constants) per trial, with made-up objective values told back."""
    space = make_space()
    define = DefineByRun(space)
    study = make_study()
    out = []
    for i in range(N_TRIALS):
        trial = study.ask()
        constants = define(trial)
        out.append((dict(trial.params), constants))
        size = trial.params.get("bilstm/hidden_dim", 0) + trial.params.get("transformer/hidden_size", 0)
        study.tell(trial, [0.5 + 0.01 * (i % 7), float(size + i)])
    return space, out


def domain_of(space: SweepConfig, name: str) -> Domain:
    if name == "student":
        return Choice(tuple(space.students))
    if name == "method":
        return Choice(tuple(space.methods))
    if "/" in name:
        component, setting = name.split("/")
        return {**space.methods, **space.students}[component][setting]
    return space.training[name]


def inside(value, domain: Domain) -> bool:
    if isinstance(domain, Fixed):
        return value == domain.value
    if isinstance(domain, Choice):
        return value in domain.values
    if not domain.low <= value <= domain.high:
        return False
    if domain.is_int and not (isinstance(value, int) and not isinstance(value, bool)):
        return False
    if domain.step:
        steps = (value - domain.low) / domain.step
        return math.isclose(steps, round(steps), abs_tol=1e-9)
    return True


# --------------------------------------------------------------------------------------------


def test_sampled_names_are_prefixed(sampled):
    space, trials = sampled
    allowed = {"student"} | {n for n, d in space.training.items() if not isinstance(d, Fixed)}
    for family in ("bilstm", "transformer"):
        allowed |= {f"{family}/{n}" for n, d in space.students[family].items() if not isinstance(d, Fixed)}
    allowed |= {f"vanilla/{n}" for n, d in space.methods["vanilla"].items() if not isinstance(d, Fixed)}
    seen = set()
    for params, _ in trials:
        assert set(params) <= allowed, set(params) - allowed
        seen |= set(params)
    assert "method" not in seen  # only one method: picked, not sampled
    assert {"bilstm/hidden_dim", "vanilla/temperature", "vanilla/kd_loss", "transformer/num_layers",
            "transformer/init", "transformer/hidden_size", "lr", "batch_size"} <= seen
    assert seen == allowed  # every searched setting was sampled at least once


def test_only_the_chosen_familys_settings_are_sampled(sampled):
    _, trials = sampled
    for params, constants in trials:
        other = {"bilstm": "transformer", "transformer": "bilstm"}[params["student"]]
        assert not any(k.startswith(other + "/") for k in [*params, *constants]), (params, constants)


def test_width_settings_only_for_random_init(sampled):
    _, trials = sampled
    inits = []
    for params, constants in trials:
        if params["student"] != "transformer":
            continue
        init = params["transformer/init"]
        inits.append(init)
        widths = {f"transformer/{w}" for w in WIDTH}
        present = widths & (set(params) | set(constants))
        if init == "random":
            assert present == widths, (params, constants)
            assert constants["transformer/ffn_dim"] == 128  # fixed width: a constant, not sampled
        else:
            assert present == set(), (params, constants)
    assert set(inits) == {"random", "teacher_skip"}


def test_both_families_appear(sampled):
    _, trials = sampled
    families = [params["student"] for params, _ in trials]
    assert set(families) == {"bilstm", "transformer"}


def test_constants_use_flat_slash_keys(sampled):
    space, trials = sampled
    for params, constants in trials:
        # a setting is either sampled or constant; only the picked student is in both (same value)
        assert set(params) & set(constants) <= {"student", "method"}
        assert all(not isinstance(v, dict) for v in constants.values())
        assert constants["method"] == "vanilla"
        assert constants["student"] == params["student"]
        assert constants["epochs"] == 2
        if params["student"] == "bilstm":
            assert constants["bilstm/pooling"] == "mean"
        else:
            assert constants["transformer/freeze_embeddings"] is False
        for key in constants:
            if key in ("method", "student") or key in TRAINING_PARAMS:
                continue
            component, _, setting = key.partition("/")
            assert setting and component in ("vanilla", params["student"]), key
            assert isinstance(domain_of(space, key), Fixed), key


def test_values_lie_inside_their_domains(sampled):
    space, trials = sampled
    for params, constants in trials:
        for name, value in {**params, **constants}.items():
            assert inside(value, domain_of(space, name)), (name, value, domain_of(space, name))


def test_merged_config_is_complete(sampled):
    _, trials = sampled
    for params, constants in trials:
        config = nest({**params, **constants})
        student = config["student"]
        assert config["method"] == "vanilla"
        # temperature exists only for the kl discrepancy (vanilla.active)
        assert set(config["vanilla"]) == vanilla.active(config["vanilla"])
        family_params = {"bilstm": bilstm.PARAMS, "transformer": transformer.PARAMS}[student]
        expected = set(family_params)
        if student == "transformer":
            expected = transformer.active({"init": config["transformer"]["init"]})
        assert set(config[student]) == expected
        assert set(TRAINING_PARAMS) <= set(config)
        assert {"lr", "epochs", "batch_size"} <= set(config)
        assert set(config) == {"method", "student", "vanilla", student, *TRAINING_PARAMS}


def test_resolved_student_params_build_a_valid_spec(sampled):
    """A trial's student settings pass the same checks the trial itself applies."""
    from raykd.students import resolve_params

    _, trials = sampled
    for params, constants in trials:
        config = nest({**params, **constants})
        resolved = resolve_params(config["student"], config[config["student"]])
        assert set(resolved) == set({"bilstm": bilstm.PARAMS, "transformer": transformer.PARAMS}[config["student"]])


# --------------------------------------------------------------------------------------------
# FixedTrial: exact control over the branches


def test_teacher_init_asks_for_no_width_settings():
    define = DefineByRun(make_space())
    trial = optuna.trial.FixedTrial({
        "student": "transformer", "transformer/init": "teacher_skip", "transformer/num_layers": 2,
        "transformer/dropout": 0.1, "vanilla/kd_loss": "kl", "vanilla/temperature": 2.0, "vanilla/alpha": 0.5,
        "lr": 1e-3, "batch_size": 16,
    })  # FixedTrial raises if a setting it was not given is suggested
    constants = define(trial)
    assert constants == {"method": "vanilla", "student": "transformer", "transformer/freeze_embeddings": False,
                         "vanilla/augment": "none", "epochs": 2, "weight_decay": 0.01, "warmup_ratio": 0.06, "grad_clip": 1.0,
                         "steps_per_epoch": 200}


def test_random_init_asks_for_width_settings():
    define = DefineByRun(make_space())
    values = {"student": "transformer", "transformer/init": "random", "transformer/num_layers": 2,
              "transformer/dropout": 0.1, "vanilla/kd_loss": "kl", "vanilla/temperature": 2.0,
              "vanilla/alpha": 0.5, "lr": 1e-3, "batch_size": 16}
    with pytest.raises(ValueError, match="transformer/hidden_size"):
        define(optuna.trial.FixedTrial(values))
    values.update({"transformer/hidden_size": 64, "transformer/num_heads": 2})
    constants = define(optuna.trial.FixedTrial(values))
    assert constants["transformer/ffn_dim"] == 128


def test_single_choices_are_constants_not_parameters():
    space = parse_space({"task": "sst2", "data": {"glue_dir": "/unused"}, "teacher": {"path": "/unused"},
                         "methods": ["vanilla"], "students": ["bilstm"]})
    study = make_study()
    trial = study.ask()
    constants = DefineByRun(space)(trial)
    assert trial.params == {}
    config = nest(constants)
    assert config["method"] == "vanilla" and config["student"] == "bilstm"
    assert config["bilstm"] == {n: s.default for n, s in bilstm.PARAMS.items()}
    # the tang rates do not exist without augment: tang
    assert config["vanilla"] == {n: s.default for n, s in vanilla.PARAMS.items() if n in vanilla.active({})}
    assert "p_mask" not in config["vanilla"] and config["vanilla"]["augment"] == "none"
    assert {n: config[n] for n in TRAINING_PARAMS} == {n: s.default for n, s in TRAINING_PARAMS.items()}


def test_sample_maps_domains_to_optuna_distributions():
    study = make_study()
    trial = study.ask()
    assert sample(trial, "f", Fixed(3)) == 3
    sample(trial, "c", Choice(("a", "b")))
    sample(trial, "i", Range(32, 128, step=32, is_int=True))
    sample(trial, "l", Range(1e-4, 1e-2, log=True))
    sample(trial, "s", Range(0.0, 1.0, step=0.25))
    d = trial.distributions
    assert "f" not in d
    assert d["c"] == optuna.distributions.CategoricalDistribution(["a", "b"])
    assert d["i"] == optuna.distributions.IntDistribution(32, 128, step=32)
    assert d["l"] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert d["s"] == optuna.distributions.FloatDistribution(0.0, 1.0, step=0.25)


# --------------------------------------------------------------------------------------------
# pickling (Tune pickles the searcher with this callable)


def test_define_by_run_pickles():
    define = DefineByRun(make_space())
    clone = pickle.loads(pickle.dumps(define))
    assert clone.space == define.space
    values = {"student": "bilstm", "bilstm/hidden_dim": 64, "bilstm/embedding_dim": 96, "bilstm/dropout": 0.2,
              "vanilla/kd_loss": "mse", "vanilla/temperature": 3.0, "vanilla/alpha": 0.25, "lr": 1e-3,
              "batch_size": 32}
    assert clone(optuna.trial.FixedTrial(values)) == define(optuna.trial.FixedTrial(values))


def test_same_seed_same_trials():
    def run():
        define, study, out = DefineByRun(make_space()), make_study(), []
        for i in range(12):
            trial = study.ask()
            out.append((trial.params, define(trial)))
            study.tell(trial, [0.1 * (i % 3), float(i)])
        return out

    assert run() == run()


def _enqueued(space, points):
    """Ask one Optuna trial per enqueued point; yield ``(trial, constants)`` and tell each a result."""
    study = make_study()
    for point in points:
        study.enqueue_trial(point)
    define = DefineByRun(space)
    for _ in points:
        trial = study.ask()
        yield trial, define(trial)
        study.tell(trial, [0.5, 1.0])


def test_the_first_trials_take_each_method_once():
    """``first_points`` enqueued in Optuna fix ``method`` and leave the other settings to the sampler."""
    from raykd.sweep.run import first_points

    space = parse_space({"name": "m", "task": "sst2", "data": {"glue_dir": "/unused"}, "teacher": {"path": "/unused"},
                         "methods": {"vanilla": {}, "random_tokens": {}, "zero_shot": {}},
                         "students": {"bilstm": {"hidden_dim": [32, 64]}}})
    points = first_points(space, num_samples=5)
    assert points == [{"method": "vanilla"}, {"method": "random_tokens"}, {"method": "zero_shot"}]
    assert first_points(space, num_samples=2) is None  # fewer trials than methods: leave it to the sampler
    chosen = []
    for trial, config in _enqueued(space, points):
        chosen.append(config["method"])
        assert "bilstm/hidden_dim" in trial.params  # the rest is still sampled
    assert chosen == ["vanilla", "random_tokens", "zero_shot"]


def test_the_first_trials_take_each_arm_once():
    """A method's ARMS setting (augment) splits it into arms: each is enqueued once, in order."""
    from raykd.sweep.run import first_points

    space = parse_space({"name": "m", "task": "sst2", "data": {"glue_dir": "/unused"}, "teacher": {"path": "/unused"},
                         "methods": {"supervised": {}, "vanilla": {"augment": ["none", "tang"]},
                                     "generation": {"augment": ["none", "tang"], "multiple": [2.0, 5.0]}},
                         "students": {"bilstm": {}}})
    points = first_points(space, num_samples=6)
    assert points == [{"method": "supervised"}, {"method": "vanilla", "vanilla/augment": "none"},
                      {"method": "vanilla", "vanilla/augment": "tang"},
                      {"method": "generation", "generation/augment": "none"},
                      {"method": "generation", "generation/augment": "tang"}]
    seen = []
    for trial, config in _enqueued(space, points):
        method = config["method"]
        augment = trial.params.get(f"{method}/augment", config.get(f"{method}/augment"))
        seen.append((method, augment))
        if augment == "tang":  # the rates exist only for the tang arm
            assert f"{method}/p_mask" in trial.params or f"{method}/p_mask" in config
        else:
            assert f"{method}/p_mask" not in trial.params and f"{method}/p_mask" not in config
    assert seen == [("supervised", None), ("vanilla", "none"), ("vanilla", "tang"),
                    ("generation", "none"), ("generation", "tang")]
