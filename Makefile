# strata: `make run` serves the demo canvas (reloading its file on change), `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: serving needs only the runtime dependencies, the checks need the test extras.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: run test lint typecheck pytest jstest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e . --config-settings editable_mode=compat
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[test]' --config-settings editable_mode=compat
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/strata serve --app examples.demo:canvas --print-dev-token --reload

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python .ci/standalone.py
	$(BIN)/python .ci/layers.py

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

jstest:
	@if ls tests/js/*.test.mjs >/dev/null 2>&1; then node --test tests/js/; fi

test: lint typecheck jstest pytest

bench: $(TEST_STAMP)
	$(PIP_INSTALL) -e '.[test,bench]' --config-settings editable_mode=compat
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .strata .mypy_cache .ruff_cache .pytest_cache
