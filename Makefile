# One command per job. `make serve` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: serve test lint format bench fuzz hostile chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)  ## start the gateway (SQLite + sandbox), printing a first API token
	$(BIN)/reelgate serve

test: $(STAMP)  ## the whole suite: unit, integration, acceptance
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff + mypy --strict on src/
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)  ## performance figures as ratios against baselines measured in the same run
	$(BIN)/python bench/run.py

HOSTILE = $(BIN)/python -m bench.hostile --db sqlite --db postgres \
	--cases $(or $(HOSTILE_CASES),20000) --seed $(or $(FUZZ_SEED),1) $(HOSTILE_ARGS)

fuzz: $(STAMP)  ## schemathesis (10,000 cases), then the hostile corpus on SQLite and PostgreSQL (20,000 each)
	status=0; \
	$(BIN)/python -m bench.fuzz --cases $(or $(FUZZ_CASES),10000) --seed $(or $(FUZZ_SEED),1) || status=1; \
	$(HOSTILE) || status=1; \
	exit $$status

hostile: $(STAMP)  ## the hostile corpus alone: no 5xx, no hang, no unhandled error, the worker alive
	$(HOSTILE)

chaos: $(STAMP)  ## 1000 tasks, upstream faults, 5 kill -9s: SQLite, then PostgreSQL (CHAOS_SEED replays one)
	$(BIN)/python -m bench.chaos --db sqlite --tasks 1000 --kills 5 $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))
	$(BIN)/python -m bench.chaos --db postgres --tasks 1000 --kills 5 $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache src/*.egg-info
