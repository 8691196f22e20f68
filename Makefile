# One command runs the engine, one runs every check. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run check lint typecheck test bench schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the engine on its embedded defaults (SQLite store, RabbitMQ on localhost)
	$(BIN)/carebridge run

check: lint typecheck test  ## every check: ruff, mypy --strict, the whole test suite

lint: $(STAMP)  ## ruff, and the layering as import-linter contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/end_to_end.py

schema: $(STAMP)  ## regenerate docs/care-event.schema.json from mappings/model.py
	$(BIN)/carebridge schema > docs/care-event.schema.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
