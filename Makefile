# callsync developer commands. On a fresh machine with Python 3.11+ and make:
#   make demo   sync the seeded demo calls into the local HubSpot stand-in through Dagster
#   make test   run the test suite (PostgreSQL on 127.0.0.1:5432 or TEST_DATABASE_URL, else embedded)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install demo ui test bench lint validate clean

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "callsync needs Python 3.11 or newer; set PYTHON=python3.11 (or newer) and run make again")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/callsync demo

ui: $(INSTALLED)
	$(BIN)/callsync ui

test: $(INSTALLED)
	$(BIN)/python -m pytest

# Full size takes a long time; shrink it with BENCH_SESSIONS, BENCH_PER_CALL_SESSIONS and BENCH_MEMORY_SESSIONS.
bench: $(INSTALLED)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.sensor_tick
	$(BIN)/python -m bench.latency

lint: $(INSTALLED)
	$(BIN)/ruff check callsync_dagster tests
	$(BIN)/ruff format --check callsync_dagster tests

validate: $(INSTALLED)
	CALLSYNC_DATABASE_URL=unused HUBSPOT_ACCESS_TOKEN=unused $(BIN)/dagster definitions validate -w workspace.yaml

clean:
	rm -rf $(VENV) .pgdata .dagster_home .tmp_dagster_home_* .pytest_cache
