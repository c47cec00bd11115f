# Two entry points a new user needs: `make serve` (sandbox) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup serve test lint bench

$(BIN)/sessiongraph: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/sessiongraph

serve: setup
	$(BIN)/sessiongraph serve --sandbox

lint: setup
	$(BIN)/ruff check sessiongraph tests bench
	$(BIN)/ruff format --check sessiongraph tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/season.py
	$(BIN)/python bench/cache.py
