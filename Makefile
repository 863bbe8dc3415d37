# The two entry points of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/segtrain: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/segtrain

demo: venv
	$(BIN)/segtrain fit examples/spirals.py --epochs 12 --segment 4 --seed 0 --run-dir checkpoints/demo

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) checkpoints/demo
