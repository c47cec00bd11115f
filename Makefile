# Two entry points a new user needs: `make serve` (sandbox) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup serve test lint bench system-deps federation-deps clients-deps

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

# The cache tests run a real redis-server, the live tests Debian's mosquitto, the playground test
# Debian's Chromium, the federation test Node and npm; on Debian as root the missing ones are
# installed. Each entry is command:package.
SYSTEM_DEPS := redis-server:redis-server /usr/sbin/mosquitto:mosquitto /usr/bin/chromium:chromium node:nodejs npm:npm
system-deps:
	@missing=; for dep in $(SYSTEM_DEPS); do \
	  command -v "$${dep%%:*}" >/dev/null || missing="$$missing $${dep#*:}"; done; \
	[ -z "$$missing" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "please install:$$missing (e.g. apt-get install$$missing)" >&2; exit 1; fi; }

# The federation test composes and serves the schema with pinned npm packages; `npm ci` only
# when the lock file changed since the last install.
FEDERATION := tests/federation
$(FEDERATION)/node_modules/.package-lock.json: $(FEDERATION)/package-lock.json
	cd $(FEDERATION) && npm ci --no-audit --no-fund --loglevel=error

federation-deps: system-deps $(FEDERATION)/node_modules/.package-lock.json

# The client tests run urql, Apollo Client, GraphQL Codegen and GraphQL Inspector, pinned likewise.
CLIENTS := tests/clients
$(CLIENTS)/node_modules/.package-lock.json: $(CLIENTS)/package-lock.json
	cd $(CLIENTS) && npm ci --no-audit --no-fund --loglevel=error

clients-deps: system-deps $(CLIENTS)/node_modules/.package-lock.json

test: system-deps federation-deps clients-deps lint
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/season.py
	$(BIN)/python bench/cache.py
	$(BIN)/python bench/limits.py
	$(BIN)/python bench/http_cache.py
	$(BIN)/python bench/exploration.py
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/telemetry.py
