# Two entry points: `make demo` runs the product, `make test` runs every check.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
PYTEST := $(BIN)/pytest -q -p no:cacheprovider

.PHONY: install system-deps lint test test-sqlite test-postgres demo sandbox bench bench-quick bench-big bench-push soak clean

$(BIN)/.installed: pyproject.toml qbo_sandbox/pyproject.toml xero_sandbox/pyproject.toml reference_crm/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q -e ./qbo_sandbox -e ./xero_sandbox -e ./reference_crm
	touch $@

install: $(BIN)/.installed system-deps

system-deps:
	@scripts/install-system-deps

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test-sqlite: install
	$(PYTEST)

test-postgres: install
	@url=$$(scripts/pg-test-server start) && \
	  CRM_QBO_TEST_DATABASE_URL=$$url $(PYTEST); status=$$?; scripts/pg-test-server stop; exit $$status

# Lint and types, then the whole suite on SQLite, then again on PostgreSQL.
test: lint test-sqlite test-postgres

demo: install
	$(BIN)/python -m reference_crm

sandbox: install
	$(BIN)/python -m qbo_sandbox --port 8765

# Benchmarks against the sandbox, with the peers (bench/peers/ venvs), then the 100,000 + 100,000
# import for memory; writes bench/RESULTS.md and bench/results/latest.json.
bench: install
	PYTHONPATH=. $(BIN)/python -m bench.run $(ARGS)

# A small run of every workload on both databases, with the peers, in a few minutes;
# writes bench/RESULTS-quick.md and bench/results/quick.json (never the full RESULTS.md).
bench-quick: install
	PYTHONPATH=. $(BIN)/python -m bench.run --quick $(ARGS)

# The 100,000 + 100,000 import (memory), one mode.
bench-big: install
	PYTHONPATH=. $(BIN)/python -m bench.run --big --modes zero --report bench/RESULTS-big.md --out bench/results/big.json

# W4 at the issue's full size (10,000 invoices) under QBO's throttles.
bench-push: install
	PYTHONPATH=. $(BIN)/python -m bench.run --modes throttled --workloads W4 --push 10000 --report bench/RESULTS-push.md --out bench/results/push.json

# The soak test: real processes, a two-way workload and faults for MINUTES, then reconcile
# (exit 1 on any difference, duplicate or loss). PostgreSQL: CRM_QBO_TEST_DATABASE_URL=$(scripts/pg-test-server start).
MINUTES ?= 20
soak: install
	PYTHONPATH=. $(BIN)/python -m tests.harness.soak --minutes $(MINUTES) $(SOAK_ARGS)

clean:
	scripts/pg-test-server stop
	rm -rf .run $(VENV) *.egg-info
