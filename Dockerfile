# smartqueue service image. Build: `docker compose build` (see docs/deploy.md).
# Two stages: the first installs into a venv, the second copies only that venv — no source
# tree, build backend or pip cache in the shipped image.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
# The service alone: the GPU simulator (src/smartqueue_sim) is a separate product and stays out.
COPY src/smartqueue/ src/smartqueue/
# requirements.lock pins the runtime *and* the dev tools (ruff, mypy, pytest...). Installing it
# whole would ship the dev tools; instead pip installs the package's own runtime dependencies
# (pyproject.toml), each held to its locked version by the constraint file.
# tests/deploy checks that the lock pins every runtime dependency, so nothing here floats.
RUN pip install --constraint requirements.lock .

FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    SMARTQUEUE_FLEET=/app/deploy/fleet.yaml

# The blob directory exists owned by the service user, so a fresh named volume mounted there
# (compose: `blobs`) starts with that owner and the service can write batch files to it.
RUN groupadd --system --gid 10001 smartqueue \
    && useradd --system --uid 10001 --gid smartqueue --no-log-init --no-create-home \
       --shell /usr/sbin/nologin smartqueue \
    && mkdir -p /var/lib/smartqueue/blobs \
    && chown -R 10001:10001 /var/lib/smartqueue

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY deploy/fleet.yaml deploy/fleet.yaml

# Numeric, so the runtime (and Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
EXPOSE 8091

# /health answers 200 only when Redis answers; urlopen raises (exit 1) on 503 or no answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8091/health', timeout=4)"]

CMD ["smartqueue", "serve", "--host", "0.0.0.0", "--port", "8091"]
