# syntax=docker/dockerfile:1
# One image for the gateway and every service of the Landsberg integration platform.
#
#   docker build -t registry.landsberg.de/integration/platform:0.1.0 .
#   docker build --target registration -t ...   # the same image with the registration service as its default
#
# Which process a container runs is its command: Kubernetes (deploy/k8s) sets
#   uvicorn --factory services.<name>.app:create_app --host 0.0.0.0 --port 8000
# and the image's default is the app named by APP (the gateway unless a per-service target is built).
# Without ENVIRONMENT every process runs as production: development secrets and DEMO_DATA=true are refused,
# and the gateway's embedded sign-in starts with no accounts; its first admin (users file on a volume):
#   docker run --rm -v gateway-users:/data -e GATEWAY_LOCAL_USERS_FILE=/data/users.json IMAGE \
#     python -m gateway.auth create-user admin --role admin
# A service's migrations as a one-off command (what the migration Job in deploy/k8s runs):
#   docker run --rm -e REGISTRATION_DATABASE_URL=postgresql://... IMAGE python -c "import importlib, os; \
#     from pathlib import Path; from chassis.migrations import upgrade_to_head; \
#     m = importlib.import_module('services.registration.migrations'); \
#     upgrade_to_head(Path(m.__file__).parent, os.environ['REGISTRATION_DATABASE_URL'], 'alembic_version_registration')"

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: a virtual environment with the project and its pinned dependencies ----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# Compilers only here, for a dependency without a wheel for this platform; the final stage has none.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first, exactly as locked and checked against their hashes (a layer that changes only with the
# lock); then the project alone, built by the locked setuptools without downloading anything else.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY chassis ./chassis
COPY contracts ./contracts
COPY services ./services
COPY gateway ./gateway
COPY reference ./reference
RUN pip install --no-deps --no-build-isolation . \
    && python -m compileall -q /opt/venv/lib

# --- runtime: the interpreter, the virtual environment, a non-root user; no compilers, no source tree -----------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="Landsberg am Lech integration platform" \
      org.opencontainers.image.licenses="EUPL-1.2"
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP=gateway.app:create_app \
    PORT=8000
# The working directory is empty and read-only at run time (readOnlyRootFilesystem); /tmp is the writable place.
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
CMD ["sh", "-c", "exec uvicorn --factory \"$APP\" --host 0.0.0.0 --port \"$PORT\" --no-access-log"]

# --- one target per process: the same image, another default app ------------------------------------------------
FROM runtime AS registration
ENV APP=services.registration.app:create_app

FROM runtime AS referral
ENV APP=services.referral.app:create_app

FROM runtime AS courses
ENV APP=services.courses.app:create_app

FROM runtime AS partners
ENV APP=services.partners.app:create_app

FROM runtime AS monitoring
ENV APP=services.monitoring.app:create_app

# The default target (the last stage): the gateway.
FROM runtime AS gateway
ENV APP=gateway.app:create_app
