# Two commands do everything on a fresh machine:
#   make demo   set up .venv, then run the demo sweep (search_spaces/sst2_demo.yaml)
#   make test   set up .venv, then run the whole test suite
#   make test-fast  the unit tier only (no Ray, no training on real data): under 2 minutes
# The data and weights they use live in ../shared (override with SHARED=...).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first and pinned: this CPU build is on this machine's package index; a range would pull
# a newer release with several GB of CUDA packages. Override for a GPU box: make TORCH=torch==2.13.0+cu128
TORCH ?= torch==2.13.0
SPACE ?= search_spaces/sst2_demo.yaml

# No model or dataset hub here: everything reads local folders. Token auth off for the local Ray.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export RAY_AUTH_MODE := disabled
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/raykd sweep --space $(SPACE)

test: setup
	$(BIN)/python -m pytest --durations=15

test-fast: setup
	$(BIN)/python -m pytest -m "not ray and not integration"

bench: setup
	$(BIN)/python benchmarks/trial_overhead.py
	$(BIN)/python benchmarks/trial_startup.py
	$(BIN)/python benchmarks/token_sampling.py
	$(BIN)/python benchmarks/transfer_cache.py
	$(BIN)/python benchmarks/multitask_loop.py

clean:
	rm -rf $(VENV) raykd_runs .pytest_cache
