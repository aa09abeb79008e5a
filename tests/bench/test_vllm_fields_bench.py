"""bench/vllm_fields_bench.py's report: per-variant medians and the paired difference to plain."""

from __future__ import annotations

from bench.vllm_fields_bench import VARIANTS, report


def test_paired_differences_are_per_request_and_plain_has_none():
    plain = [(10.0, 10.0), (20.0, 20.0), (30.0, 30.0), (40.0, 40.0)]
    # The same requests 2 ms slower with the proxy's fields, 0.5 ms with token ids only.
    results = {
        "plain": plain,
        "return_token_ids": [(a, b + 0.5) for a, b in plain],
        "proxy's fields": [(a, b + 2.0) for a, b in plain],
    }
    assert set(results) == set(VARIANTS)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report(results).splitlines()[2:]}
    assert rows["plain"].endswith("| — |")
    assert "| 27.00 | +2.00 [+2.00, +2.00] |" in rows["proxy's fields"]
    assert "+0.50 [+0.50, +0.50]" in rows["return_token_ids"]
