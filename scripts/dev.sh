#!/usr/bin/env bash
# Sets up .venv and runs the whole service with `herald dev` (embedded defaults for anything unset).
source "$(dirname "$0")/bootstrap.sh"
exec herald dev "$@"
