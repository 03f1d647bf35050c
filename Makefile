# smartqueue: `make run` starts the local stack, `make test` runs every check.
# Both set up what they need on a fresh machine (venv from requirements.lock, and
# redis-server/nginx, chromium for the browser tests and prometheus's promtool through
# apt-get when missing).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help venv system-deps lint format types test soak run bench clean

help:
	@echo "make run    - local stack on loopback (redis, sim GPUs, smartqueue, nginx)"
	@echo "make test   - lint, types and all tests"
	@echo "make soak   - faults in turn under steady load (SOAK_S seconds, default 600)"
	@echo "make format - apply ruff formatting"
	@echo "make bench  - benchmarks -> BENCHMARKS.md (BENCH_QUICK=1 for a fast check)"

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

venv: $(STAMP)

system-deps:
	@scripts/ensure-system-deps.sh redis-server redis-cli nginx chromium promtool systemd-analyze

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

types: venv
	$(BIN)/mypy

test: venv system-deps lint types
	$(BIN)/pytest $(PYTEST_ARGS)

# The soak (RELIABILITY.md): replica kill -9, Redis frozen, Redis kill -9 in turn under load.
SOAK_S ?= 600
soak: venv system-deps
	SMARTQUEUE_SOAK_S=$(SOAK_S) $(BIN)/pytest -s -p no:cacheprovider tests/soak --timeout=$$(($(SOAK_S) + 600))

run: venv system-deps
	@$(BIN)/smartqueue stack $(RUN_ARGS)

bench: venv
	@scripts/ensure-system-deps.sh redis-server wrk
	$(BIN)/python -m bench
	@printf '\n## Batch work beside interactive traffic (`python -m bench.batch_interference`)\n\n```\n' >> BENCHMARKS.md
	$(BIN)/python -m bench.batch_interference | tee -a BENCHMARKS.md
	@printf '```\n' >> BENCHMARKS.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
