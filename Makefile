# The two set-up commands (README, CONTRACT.md): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gateway init --dir var
	$(BIN)/gateway run --config var/gateway.toml

test: $(STAMP)
	$(BIN)/ruff check gateway connectors tests bench
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check gateway connectors tests bench
	$(BIN)/ruff format --check gateway connectors tests bench

bench: $(STAMP)
	$(BIN)/python bench/bench_rules.py
	$(BIN)/python bench/bench_smtp.py
	$(BIN)/python bench/bench_alerts.py
	$(BIN)/python bench/bench_sla.py

clean:
	rm -rf $(VENV) .pytest_cache
