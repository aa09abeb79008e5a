#!/bin/bash
# Is the TTFT deepguard adds at one stream (docs/benchmarks-vllm.md) the proxy's own work or the
# proxy waiting for a core that vLLM keeps busy? The same vLLM and proxy processes in three
# phases: unpinned, then vLLM on core 0 and the proxy and load generator on core 1, then unpinned
# again. Needs `make install` (both venvs and the prepared model) and 2+ cores.
#   BENCH_ARGS="--rounds 3 --per-stream 40 --max-tokens 16 --jitter-ms 100" bench/vllm_bench_pinned.sh
set -uo pipefail
cd "$(dirname "$0")/.."
SERVED=${SERVED:-$HOME/.cache/deepguard/models/deepguard-smollm2}
KEY=dg-pinned-$RANDOM$RANDOM
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
VP=$(free_port); PP=$(free_port)
VLLM_CPU_KVCACHE_SPACE=2 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 VLLM_USE_AOT_COMPILE=0 \
  setsid .vllm-venv/bin/python -m vllm.entrypoints.launchers.api_server.entry --model $SERVED \
  --served-model-name deepguard-smollm2 --host 127.0.0.1 --port $VP --api-key $KEY \
  --max-model-len 2048 --disable-uvicorn-access-log > "${LOG_DIR:-/tmp}/pinned-vllm.log" 2>&1 &
VPID=$!
for i in $(seq 300); do curl -sf -H "Authorization: Bearer $KEY" http://127.0.0.1:$VP/v1/models >/dev/null && break; sleep 1; done
echo "vllm ready after $i s"
DEEPGUARD_UPSTREAM_API_KEY=$KEY setsid .venv/bin/deepguard serve --upstream http://127.0.0.1:$VP \
  --port $PP --workers 1 > "${LOG_DIR:-/tmp}/pinned-proxy.log" 2>&1 &
PPID_=$!
for i in $(seq 60); do curl -sf http://127.0.0.1:$PP/readyz >/dev/null && break; sleep 1; done
echo "proxy ready"
bench() { "$@" .venv/bin/python bench/vllm_bench.py --proxy http://127.0.0.1:$PP --vllm http://127.0.0.1:$VP \
  --vllm-key $KEY --streams 1 --no-litellm ${BENCH_ARGS:---rounds 3 --per-stream 4} 2>&1 | grep -v "^\s*$" | tail -25; }
pin() { for p in $(pgrep -g $(ps -o pgid= $1 | tr -d ' ')); do taskset -a -p -c $2 $p >/dev/null; done; }
echo "=== A: unpinned"; bench
pin $VPID 0; pin $PPID_ 1
echo "=== B: vLLM on core 0, proxy and load generator on core 1"; bench taskset -c 1
pin $VPID 0,1; pin $PPID_ 0,1
echo "=== A again: unpinned"; bench
kill -TERM -$(ps -o pgid= $PPID_ | tr -d ' ') -$(ps -o pgid= $VPID | tr -d ' ')
wait
