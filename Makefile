# The hotline's two commands: `make run` and `make test`. Both set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run stop test test-unit test-e2e lint deps deps-test asterisk clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

deps:
	@scripts/install-deps.sh

deps-test:
	@scripts/install-deps.sh --test

asterisk:
	@scripts/provision-asterisk.sh >/dev/null

## Bring the whole hotline up (PostgreSQL, Asterisk, call control, desk); Ctrl-C stops it.
run: deps asterisk $(STAMP)
	$(BIN)/hotline run

## Stop what `make run` started.
stop:
	@if [ -x $(BIN)/hotline ]; then $(BIN)/hotline stop; else echo "nothing to stop"; fi

## This queue beside Asterisk's app_queue, same Asterisk, same load: writes docs/benchmarks.md
## (its own stack in var/bench on its own ports; BENCH_ARGS=--quick for a short run).
bench: deps asterisk $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## Every test: unit tests, then end-to-end tests on the real Asterisk and PostgreSQL.
test: deps-test asterisk $(STAMP)
	$(BIN)/python -m pytest -q -ra --durations=20

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e"

test-e2e: deps-test asterisk $(STAMP)
	$(BIN)/python -m pytest -q -ra -m e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy ivr agent_desk dialplan db hotline

clean:
	rm -rf var/test
