# fiblab: one-line targets. `make test` does all set-up it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VARIANT ?= threads

.PHONY: help venv lint test test-fast bench-server serve dashboards clean

help:
	@echo "make test          lint (ruff, mypy) and every test; creates $(VENV) on first use"
	@echo "make test-fast     the tests not marked slow"
	@echo "make lint          ruff and mypy only"
	@echo "make bench-server  req/s and s/request of every variant; metrics overhead"
	@echo "make serve VARIANT=threads   run one variant on 127.0.0.1:25000 (metrics :9100)"
	@echo "make dashboards    regenerate grafana/dashboards/*.json from grafana/dashboards.py"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("fiblab needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow and not docker"

bench-server: $(STAMP)
	$(BIN)/python -m tests.bench_server

serve: $(STAMP)
	$(BIN)/python -m services $(VARIANT)

dashboards: $(STAMP)
	$(BIN)/python grafana/dashboards.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
