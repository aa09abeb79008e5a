"""`make bench`: run the project's benchmarks one after another, each printing its own table.

The proxy benchmark against stub upstreams (rewrites docs/benchmarks.md) and the served default
through the proxy against real vLLM (rewrites docs/benchmarks-vllm.md); add the other
bench/*_bench.py scripts here with the arguments that give their documented default run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHES: list[list[str]] = [
    ["proxy_bench.py", "--write-docs"],
    ["vllm_bench.py", "--write-docs"],
]


def main() -> int:
    failed = []
    for script, *args in BENCHES:
        print(f"== bench/{script} {' '.join(args)}", flush=True)
        if subprocess.run([sys.executable, str(BENCH / script), *args]).returncode != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
