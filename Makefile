# Needs only GNU make and Python 3.11 (with venv); durable-rules compiles with gcc.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.DEFAULT_GOAL := help
.PHONY: help install run test lint format clean container-check browser redis

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'

# Serving needs the project alone; the tests add their extra. Each stamp is redone when
# pyproject.toml changes; the test install covers serving too.
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -e .
	touch $@

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[test]'
	touch $@ $(RUN_STAMP)

install: $(STAMP) ## Create the virtualenv and install the project with its test extra

run: $(RUN_STAMP) ## Serve the app with gunicorn (PORT, WEB_CONCURRENCY, ... from the environment)
	exec $(BIN)/gunicorn --config gunicorn.conf.py 'service:create_app()'

# Debian's Chromium for tests/browser (a browser download never works here). Installed only
# when missing and run as root with apt-get; never fails the build: without Chromium the
# browser tests skip, saying why.
browser: ## Install Debian's chromium for the browser tests, if missing and possible
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
	     apt-get install -y -qq chromium >/dev/null) || \
	      echo "warning: could not install chromium: the browser tests will be skipped"; \
	  else echo "warning: chromium is missing and cannot be installed here (needs root and" \
	    "apt-get): the browser tests will be skipped"; fi; }

# Debian's redis-server for the shared replay-store tests (tests/redis_server.py starts its own
# on a free port, nothing on disk). Unlike Chromium it is required: those tests never skip.
redis: ## Install Debian's redis-server for the tests, if missing
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's redis-server for the replay-store tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq redis-server >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }; \
	  else echo "error: the tests need redis-server; install it (e.g. apt-get install" \
	    "redis-server) or run make test as root"; exit 1; fi; }

test: $(STAMP) browser redis ## Lint, then run the test suite
	$(BIN)/ruff check service tests
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Reformat and autofix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the virtualenv, build outputs and caches
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

container-check: ## Build the Dockerfile with podman and probe /readyz (needs root)
	../shared/tools/container-check
