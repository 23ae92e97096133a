# syntax=docker/dockerfile:1
# Herald's image: one image for `herald api`, `herald worker` and `herald migrate`.
# Build: docker build -t herald .   (docker-compose.yaml does it for you)

# --- build: install the dependencies and Herald into a virtualenv ---------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p src/herald workers \
    && touch src/herald/__init__.py workers/__init__.py \
    && pip install . \
    && pip uninstall -y herald
COPY src ./src
COPY workers ./workers
COPY alembic ./alembic
COPY alembic.ini ./
# Editable: `herald migrate` finds alembic/ and alembic.ini beside the sources in /app.
RUN pip install --no-deps -e .

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
