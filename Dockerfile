# The base is a build argument so the image can be built on a locally made Debian bookworm with
# Python 3.11 (../shared/tools/container-check) as well as on python:3.11-slim. Only `python3`
# from PATH is used, never a /usr/local path.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build

# durable-rules has no wheels: it compiles its C engine. python3-dev (Python.h) is only installed
# when the base lacks the headers (Debian's python3; python:3.11-slim already has them).
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends gcc g++ make libc6-dev; \
    if ! python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then \
        apt-get install -y --no-install-recommends python3-dev; \
    fi; \
    rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --quiet --upgrade pip

WORKDIR /src
COPY pyproject.toml ./
COPY service ./service
# Non-editable install: the package lands in the venv's site-packages, /src is not needed later.
RUN /opt/venv/bin/python -m pip install . \
    && /opt/venv/bin/python -c "import durable.lang, service"


FROM ${BASE_IMAGE}

RUN useradd --system --no-log-init --user-group --uid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY gunicorn.conf.py openapi.yaml ./
COPY rulesets ./rulesets

# The package is in site-packages, so its repo-relative defaults for data files do not apply.
ENV PATH=/opt/venv/bin:$PATH \
    PORT=8080 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RULESETS_DIR=/app/rulesets \
    OPENAPI_PATH=/app/openapi.yaml
# Production: CDS Hooks calls need the EHR's signed JWT; set CDS_HOOKS_ISSUERS and CDS_HOOKS_PUBLIC_URL.
ENV CDS_HOOKS_AUTH=on

USER 10001:10001
EXPOSE 8080

# No curl in the image: probe with the venv's python3.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]

# Exec form: gunicorn is PID 1 and gets SIGTERM directly for a graceful shutdown.
CMD ["gunicorn", "--config", "/app/gunicorn.conf.py", "service:create_app()"]
