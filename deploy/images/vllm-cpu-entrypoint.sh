#!/bin/sh
# Entrypoint of deploy/images/vllm-cpu.Dockerfile: vLLM's OpenAI server on the model directory the
# image carries ($SERVED_MODEL_DIR), with the flags given as arguments.
#
# TOKENIZER_SHARE_DIR=DIR (compose's cpu profile mounts a volume there, which the proxy mounts
# read-only): DIR is first emptied, then gets every file of the model directory except the
# weights, so the proxy reads the control tokens of exactly the model this container serves. It
# is refilled on every start on purpose: a volume filled once from the image would keep the first
# build's files after a rebuild.
set -eu
model_dir="${SERVED_MODEL_DIR:?SERVED_MODEL_DIR must name the model directory to serve}"
share="${TOKENIZER_SHARE_DIR:-}"
if [ -n "$share" ]; then
    if [ ! -d "$share" ] || [ ! -w "$share" ]; then
        echo "vllm-cpu-entrypoint: TOKENIZER_SHARE_DIR=$share is not a writable directory" >&2
        exit 1
    fi
    find "$share" -mindepth 1 -delete
    for file in "$model_dir"/*; do
        case "$file" in
            *.safetensors|*.bin|*.pt|*.pth|*.gguf) continue ;;  # weights: the proxy never loads them
        esac
        if [ -f "$file" ]; then cp "$file" "$share/"; fi
    done
fi
# `python -m` rather than the `vllm` console script: the CPU build's distribution is named
# vllm-cpu, and that script looks its version up under `vllm` and fails.
exec python -m vllm.entrypoints.launchers.api_server.entry --model "$model_dir" "$@"
