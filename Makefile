# Two commands for a newcomer: `make serve` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers for `make test` (each has its own migrated SQLite template and PostgreSQL schema)
TEST_WORKERS ?= 2

.PHONY: setup serve test lint format bench bench-echo bench-auth bench-query bench-retrieve bench-scale bench-orders bench-worklist bench-outbox bench-sr conformance
setup: $(STAMP)

$(STAMP): pyproject.toml .ci/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c .ci/constraints.txt -e ".[test]"
	touch $@

# TMPDIR: pynetdicom receives each C-STORE data set there; in staging, storing it is a rename
serve: setup
	@data="$${FACADE_DATA_DIR:-facade-data}"; mkdir -p "$$data/blobs/.staging" \
		&& TMPDIR="$$data/blobs/.staging" exec $(BIN)/facade serve

test: setup
	.ci/system-deps
	.ci/fetch-fhir-schema || echo "make test: FHIR R4 schema not fetched; the tests that need it will skip" >&2
	.ci/fetch-fhir-examples || echo "make test: FHIR R4 examples not fetched; the tests that need them will skip" >&2
	.ci/fetch-ohif || echo "make test: the OHIF Viewer not fetched; its end-to-end tests will skip" >&2
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m bench.ingest

bench-auth: setup
	$(BIN)/python -m bench.auth

bench-query: setup
	$(BIN)/python -m bench.query

bench-scale: setup
	$(BIN)/python -m bench.scale

# docs/conformance.md is generated from the code (a test keeps them equal)
conformance: setup
	$(BIN)/python -m facade.conformance > docs/conformance.md

bench-retrieve: setup
	$(BIN)/python -m bench.retrieve

bench-orders: setup
	$(BIN)/python -m bench.orders

bench-worklist: setup
	$(BIN)/python -m bench.worklist

bench-outbox: setup
	$(BIN)/python -m bench.outbox

bench-sr: setup
	$(BIN)/python -m bench.sr

bench-echo: setup
	$(BIN)/python -m bench.echo
