#!/usr/bin/env bash
# Sets up .venv and runs every check: ruff (format and lint), mypy, then pytest.
# Needs PostgreSQL (127.0.0.1:5432, trust) and Redis (127.0.0.1:6379); tests make their own databases.
source "$(dirname "$0")/bootstrap.sh"
ruff format --check .
ruff check .
mypy
pytest "$@"
