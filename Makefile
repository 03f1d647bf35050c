# smartqueue: `make run` starts the local stack, `make test` runs every check.
# Both set up what they need on a fresh machine (venv from requirements.lock, and
# redis-server/nginx, chromium for the browser tests and prometheus's promtool through
# apt-get when missing).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help venv system-deps lint format types test soak run bench profile clean

help:
	@echo "make run    - local stack on loopback (redis, sim GPUs, smartqueue, nginx)"
	@echo "make test   - lint, types and all tests"
	@echo "make soak   - faults in turn under steady load (SOAK_S seconds, default 600)"
	@echo "make format - apply ruff formatting"
	@echo "make bench  - benchmarks -> BENCHMARKS.md, about 10 min on 2 cores (sims at 20x speed,"
	@echo "              3 rounds for what a bar reads); BENCH_FULL=1 make bench: the long run,"
	@echo "              about an hour (sims at 10x, 5 rounds, every scenario on every fleet)"
	@echo "make profile - py-spy on the service under enqueue and /v1 wait-mode load -> docs/profiles/"

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

# Benchmarks (BENCHMARKS.md). Either step failing fails make bench.
BENCH_FULL ?= 0
BATCH_INTERFERENCE_S := $(if $(filter-out 0,$(BENCH_FULL)),20,10)
bench: venv
	@scripts/ensure-system-deps.sh redis-server wrk
	BENCH_FULL=$(BENCH_FULL) $(BIN)/python -m bench
	@out=$$(mktemp) && $(BIN)/python -m bench.batch_interference --seconds $(BATCH_INTERFERENCE_S) > $$out \
	  && { printf '\n## Batch work beside interactive traffic (`python -m bench.batch_interference --seconds %s`)\n\n```\n' $(BATCH_INTERFERENCE_S); \
	       cat $$out; printf '```\n'; } >> BENCHMARKS.md; \
	  status=$$?; cat $$out; rm -f $$out; exit $$status

# py-spy profiles of the service under load (also a section of make bench): docs/profiles/*.txt
profile: venv
	@scripts/ensure-system-deps.sh redis-server wrk
	$(BIN)/python -m bench.profile

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
