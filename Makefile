# One command per chore. `make run` and `make test` each do their own setup.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
VENV := .venv
# A uv already on PATH is used as is; otherwise a pinned one is installed into .tools with plain pip.
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
PY := $(VENV)/bin/python
# pgserver (embedded PostgreSQL) has wheels for CPython 3.11 and 3.12.
export UV_PYTHON ?= >=3.11,<3.13
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint format check-schema schema clean

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	touch $@

run: $(VENV)/.synced  ## Serve the API with GraphiQL at http://127.0.0.1:8000/graphql (embedded PostgreSQL + Redis by default)
	$(PY) -m taskql serve

test: lint  ## Lint, type-check, then run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.synced  ## Format, lint, types, the import layers and dead code (contracts and whitelist in pyproject.toml)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture

format: $(VENV)/.synced
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

schema: $(VENV)/.synced  ## Re-export graphql/schema.graphql
	$(PY) -m taskql export-schema

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
