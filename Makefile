# Two entry points a new user needs: `make serve` (sandbox) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup serve test lint bench system-deps

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

# The cache tests run a real redis-server; on Debian as root it is installed when missing.
system-deps:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	  else echo "please install redis-server (e.g. apt-get install redis-server)" >&2; exit 1; fi; }

test: system-deps lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/season.py
	$(BIN)/python bench/cache.py
