# The entry points of the README: `make demo` and `make test` (what CI runs: lint, types and every test),
# `make test-fast`: the in-process tests only (no training process, container or benchmark), in seconds,
# and `make lint`: ruff (lint and format) and mypy on segtrain/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint postgres venv clean

# The demo needs segtrain and its dependencies only; the tests also need the test extra (JAX, Optuna's
# PostgreSQL driver, KerasTuner, matplotlib, ruff, mypy, ...).
$(VENV)/.demo-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.test-installed

demo: $(VENV)/.demo-installed
	$(BIN)/segtrain fit examples/spirals.py --epochs 12 --segment 4 --seed 0 --run-dir checkpoints/demo

# The sweep tests run two processes against a real PostgreSQL server that they start themselves
# (tests/support/postgres.py); its binaries come from Debian's package.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's postgresql package for the sweep tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "the sweep tests need PostgreSQL: apt-get install postgresql (as root)" >&2; exit 1; fi

lint: venv
	$(BIN)/ruff check segtrain tests
	$(BIN)/ruff format --check segtrain tests
	$(BIN)/mypy

test: venv postgres lint
	$(BIN)/python -m pytest -q --durations=20

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not docker and not bench" --durations=10

clean:
	rm -rf $(VENV) checkpoints/demo
