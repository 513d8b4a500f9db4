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
# Debian's browser, where tests/test_mlflow_browser.py looks for it (make setup installs it as root)
CHROMIUM ?= /usr/bin/chromium

# No model or dataset hub here: everything reads local folders.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export RAY_USAGE_STATS_ENABLED := 0
# Ray's token auth stays on (its default) for the demo and benchmarks; only the tests, which start and
# attach to throwaway local clusters (`ray start` on 127.0.0.1), turn it off.
TEST_ENV := RAY_AUTH_MODE=disabled

.PHONY: setup browser demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@$(MAKE) --no-print-directory browser
	touch $@

# Debian's chromium for the browser tests (tests/test_mlflow_browser.py drives it with Playwright;
# no `playwright install`). Installed with apt-get when missing and run as root; anywhere else the
# setup goes on and those tests skip. apt's output goes to $(VENV)/apt-chromium.log.
browser:
	@[ -x $(CHROMIUM) ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests (apt-get, log in $(VENV)/apt-chromium.log)"; \
	    mkdir -p $(VENV); \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	    } >$(VENV)/apt-chromium.log 2>&1 || true; \
	  fi; \
	  [ -x $(CHROMIUM) ] || echo "no $(CHROMIUM) (installing it needs root and apt-get): the browser tests will be skipped"; \
	}

demo: setup
	$(BIN)/raykd sweep --space $(SPACE)

test: setup
	$(TEST_ENV) $(BIN)/python -m pytest --durations=15

test-fast: setup
	$(TEST_ENV) $(BIN)/python -m pytest -m "not ray and not integration"

bench: setup
	$(BIN)/python benchmarks/trial_overhead.py
	$(BIN)/python benchmarks/trial_startup.py
	$(BIN)/python benchmarks/token_sampling.py
	$(BIN)/python benchmarks/transfer_cache.py
	$(BIN)/python benchmarks/multitask_loop.py
	$(BIN)/python benchmarks/preflight.py

clean:
	rm -rf $(VENV) raykd_runs .pytest_cache
