# Sourced by the other scripts: make .venv with Herald and its dev tools installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install. `embedded` brings the
# PostgreSQL and Redis wheels `herald dev` runs on; the production image leaves them out.
stamp=.venv/.herald-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,embedded]'
    touch "$stamp"
fi
# The compose test checks docker-compose.yaml with the Compose CLI (no engine needed for
# `config`). Debian ships v1 as `docker-compose`; install it once where we may.
if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq docker-compose >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null && apt-get install -y -qq docker-compose >/dev/null; }
    fi
fi
# The console's browser tests (tests/console) drive Debian's Chromium through Playwright
# (Playwright's own browser download cannot run here). Install it once where we may.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null \
                 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
    fi
fi
export PATH="$PWD/.venv/bin:$PATH"
