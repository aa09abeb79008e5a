# syntax=docker/dockerfile:1
# The guard proxy: fastapi + uvicorn + httpx + prometheus-client, no torch.
# Build from the repository root:  docker build -f deploy/images/proxy.Dockerfile -t deepguard-proxy .
# Base pinned by exact version; pin by digest (python:3.11.13-slim-bookworm@sha256:...) in your
# registry mirror for fully reproducible builds.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/deepguard
WORKDIR /src
# proxy.Dockerfile.dockerignore lets only the package sources and pyproject.toml in.
COPY . .
# `pip install .` is the light install: the proxy's pinned dependencies only.
RUN /opt/deepguard/bin/pip install .

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /home/deepguard --create-home deepguard
COPY --from=build /opt/deepguard /opt/deepguard
COPY deploy/images/env-from-files.sh /usr/local/bin/env-from-files
ENV PATH=/opt/deepguard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DEEPGUARD_SERVER_HOST=0.0.0.0 \
    DEEPGUARD_SERVER_PORT=8080
USER 10001:10001
WORKDIR /home/deepguard
EXPOSE 8080
# /healthz answers while the process is up; /readyz (upstream reachable) is for orchestrators.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["env-from-files", "deepguard"]
# Without --upstream (or DEEPGUARD_UPSTREAM_URL) serve would try to start vLLM as its child,
# which this image does not contain: always give the upstream.
CMD ["serve"]
