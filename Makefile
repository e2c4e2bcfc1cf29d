# strata: `make run` serves the demo canvas, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest jstest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/strata serve --app examples.demo:canvas --print-dev-token

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

jstest:
	@if ls tests/js/*.test.mjs >/dev/null 2>&1; then node --test tests/js/; fi

test: lint typecheck jstest pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]' --config-settings editable_mode=compat
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .strata .mypy_cache .ruff_cache .pytest_cache
