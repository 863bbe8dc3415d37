# The entry points of the README: `make demo` and `make test` (what CI runs: lint, types, the docs site and
# every test), `make docs`: the documentation site into site/ (mkdocs.yml),
# `make test-fast`: the in-process tests only (no training process, container or benchmark), in seconds,
# and `make lint`: ruff (lint and format) and mypy on segtrain/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint postgres venv docs clean

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

$(VENV)/.docs-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

venv: $(VENV)/.test-installed

# The documentation site (mkdocs.yml, pages in docs/) into site/: --strict, so a broken link, a page missing from
# the nav, or a docstring that names a parameter its function does not have fails the build (and `make test`).
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

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

# The container setup and the image build (packages, a Debian base, wheels: mostly network and disk) run in
# the background while the other tests run, two at a time (pytest-xdist: most of a test's time is a worker
# starting, importing or waiting, so two share CI's two cores; measured 13:40 against 21:25 one at a time);
# then the container tests. Either failing fails `make test`.
test: venv postgres lint docs
	@mkdir -p build; \
	( bash docker/setup-podman.sh $(BIN)/python && PYTHONPATH=tests $(BIN)/python -m support.podman ) \
		> build/container-setup.log 2>&1 & setup=$$!; \
	$(BIN)/python -m pytest -q -m "not docker" -n 2 --durations=20; tests=$$?; \
	wait $$setup; built=$$?; cat build/container-setup.log; \
	if [ $$built -ne 0 ]; then echo "make test: the container setup failed (above)" >&2; exit 1; fi; \
	$(BIN)/python -m pytest -q --durations=10 tests/test_container.py || exit 1; \
	exit $$tests

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow and not docker and not bench" --durations=10

# The container tests (tests/test_container.py, issue 19) build docker/Dockerfile and run the image with
# podman. docker/setup-podman.sh first installs podman, runc and podman-compose from Debian's packages (as
# root), makes a Debian base image and fills the wheelhouse docker/wheels/, each cached between runs; as
# another user without podman it says loudly that the tests skip. `make test` runs them after the rest.
.PHONY: test-container
test-container: venv
	bash docker/setup-podman.sh $(BIN)/python
	$(BIN)/python -m pytest -q --durations=10 tests/test_container.py

# The GPU check's wheels (issue 17; docs/benchmarks.md, "GPU check"): what segtrain needs on the device
# machine beyond its JAX, PyTorch, numpy and h5py, into bench/gpu/wheels/ (ignored by git, carried with the
# run; GPU_PYTHON_VERSION=3.12 picks the binary ones' Python).
.PHONY: gpu-wheels
gpu-wheels:
	PYTHON=$(PYTHON) bash bench/gpu/wheels.sh

clean:
	rm -rf $(VENV) checkpoints/demo site
