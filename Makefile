# One command runs the engine, one runs every check. Both set up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock

.PHONY: run check lint typecheck test pip-audit lock bench fuzz schema native native-if-stale clean

# .venv holds exactly the lock: every dependency pinned and checked against its sha256 hash,
# then the project itself with no dependencies of its own (docs/deploy.md, "Installs").
$(STAMP): pyproject.toml $(LOCK) requirements-runtime.lock
	$(PYTHON) tools/lock.py verify
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# mappings.hl7v2 compiled with mypyc (tools/native.py): `make native` builds it; test, run and
# bench build it when the sources changed since the last build (built or failed). The import
# uses it only while it matches the source exactly (mappings/native.py); else the Python runs.
native: $(STAMP)  ## compile mappings.hl7v2 (a C compiler; without one the engine runs plain Python)
	$(BIN)/python tools/native.py build --or-plain

native-if-stale: $(STAMP)
	$(BIN)/python tools/native.py build --or-plain --if-stale

run: native-if-stale  ## the engine on its embedded defaults (SQLite store, RabbitMQ on localhost)
	$(BIN)/carebridge run

check: lint typecheck test pip-audit  ## ruff, mypy --strict, every test, pip-audit of the lock

lint: $(STAMP)  ## ruff, and the layering as import-linter contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: native-if-stale
	$(BIN)/pytest

pip-audit: $(STAMP)  ## skipped with a message when its vulnerability data cannot be reached
	$(BIN)/python tools/audit_deps.py --lock $(LOCK)

lock:  ## regenerate both locks from pyproject.toml (PyPI; Python 3.11), keeping pins it can
	test -x $(BIN)/pip-compile || { $(PYTHON) -m venv $(VENV) && \
	  $(BIN)/pip install --quiet --require-hashes -r $(LOCK); }
	$(BIN)/python tools/lock.py compile $(if $(UPGRADE),--upgrade)

bench: native-if-stale
	$(BIN)/python bench/end_to_end.py

FUZZ_SECONDS ?= 600
FUZZ_JOBS    ?= 2
FUZZ_DIR     ?= /tmp/carebridge-fuzz
FUZZ_NICE    ?= nice -n 19

fuzz: $(STAMP)  ## every fuzz target for FUZZ_SECONDS of CPU, FUZZ_JOBS at once (docs/reliability.md)
	$(FUZZ_NICE) $(BIN)/python -m tests.fuzz.run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) \
	  --workdir $(FUZZ_DIR) $(FUZZ_ARGS)

schema: $(STAMP)  ## regenerate docs/care-event.schema.json from mappings/model.py
	$(BIN)/carebridge schema > docs/care-event.schema.json

clean:
	rm -rf $(VENV) mappings/hl7v2/_native .mypy_cache .ruff_cache .pytest_cache
