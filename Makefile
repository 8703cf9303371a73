# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs what it needs; nothing is assumed pre-installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint unit crds chart bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/toolhive-operator demo

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check toolhive discovery tests benchmarks
	$(BIN)/ruff format --check toolhive discovery tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

crds: $(STAMP)
	$(BIN)/toolhive-operator crds --write
	$(BIN)/python chart/hack/sync.py

# The chart's generated files: values.schema.json from values.yaml, chart/crds/ copied from crds/.
chart: $(STAMP)
	$(BIN)/python chart/hack/sync.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
