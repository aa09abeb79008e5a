"""bench/vllm_bench.py's report: the added latency of each gateway over vLLM direct, the issue's
targets beside it, the rotating round order, and the doc section `--write-docs` rewrites."""

from __future__ import annotations

from bench.proxy_bench_report import replace_section
from bench.vllm_bench import BEGIN, DOC, END, paired_request, rotation, tables, targets_report


def result(ttft_ms: float, itl_ms: float, tok_s: float = 100.0) -> dict:
    return {"tok_s": tok_s, "ttft_p50_ms": ttft_ms, "itl_p50_ms": itl_ms, "requests": 8}


def results(dg_ttft: float, dg_itl: float, ll_ttft: float, ll_itl: float) -> dict:
    out = {}
    for streams in (1, 8):
        out[(streams, "direct")] = result(100.0, 20.0)
        out[(streams, "deepguard")] = result(100.0 + dg_ttft, 20.0 + dg_itl)
        out[(streams, "litellm")] = result(100.0 + ll_ttft, 20.0 + ll_itl)
    return out


def test_targets_met_when_deepguard_is_small_and_litellm_ten_times_more():
    report = targets_report(results(0.5, 0.02, 30.0, 0.5), [1, 8], True)
    assert "+0.50 ms, met" in report and "+20 us, met" in report
    assert "not met" not in report


def test_each_target_can_fail():
    report = targets_report(results(2.0, 0.08, 5.0, 0.1), [1, 8], True)
    assert "+2.00 ms, **not met**" in report and "+80 us, **not met**" in report
    assert report.count("**not met**") == 2 + 2 * 2  # LiteLLM's TTFT and ITL in both rows


def test_deepguard_adding_nothing_has_no_ratio():
    text = tables(results(-0.1, 0.0, 3.0, 0.2), [1, 8], True)
    assert "n/a" in text and "LiteLLM / deepguard TTFT" in text
    report = targets_report(results(-0.1, 0.0, 3.0, 0.2), [1, 8], True)
    assert "LiteLLM added >= 10x deepguard's at 8 streams: TTFT +3.00 vs -0.10 ms, met" in report


def test_without_litellm_there_are_no_litellm_columns():
    text = tables(results(0.5, 0.02, 0.0, 0.0), [1, 8], False)
    assert "LiteLLM" not in text and "through LiteLLM" not in text
    assert "not run (--no-litellm)" in targets_report(results(0.5, 0.02, 0, 0), [1], False)


def test_rounds_put_every_target_in_every_slot():
    names = ["direct", "deepguard", "litellm"]
    orders = [rotation(names, k) for k in range(3)]
    for slot in range(3):
        assert sorted(order[slot] for order in orders) == sorted(names)


def test_the_doc_section_is_replaced_and_its_prose_kept():
    doc = DOC.read_text()
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1
    new = replace_section(doc, "| new | table |", BEGIN, END)
    assert new.split(BEGIN)[0] == doc.split(BEGIN)[0]
    assert new.split(END)[1] == doc.split(END)[1]
    assert "| new | table |" in new.split(BEGIN)[1].split(END)[0]


def test_paired_results_compare_each_gateway_with_the_direct_half_beside_it():
    out = {}
    for streams in (1, 8):
        out[(streams, "direct|deepguard")] = result(100.0, 20.0, tok_s=50.0)
        out[(streams, "deepguard")] = result(100.4, 20.03, tok_s=49.0)
        out[(streams, "direct|litellm")] = result(90.0, 25.0, tok_s=40.0)
        out[(streams, "litellm")] = result(110.0, 25.5, tok_s=30.0)
    report = targets_report(out, [1, 8], True)
    assert "+0.40 ms, met" in report and "+30 us, met" in report
    assert "TTFT +20.00 vs +0.40 ms, met; ITL +500 vs +30 us, met" in report
    text = tables(out, [1, 8], True)
    assert "vLLM direct, beside deepguard" in text and "vLLM direct, beside LiteLLM" in text
    assert "| 8 | +0.40 | +30 | n/a (paired) | +20.00 | +500 | n/a (paired) |" in text


def test_paired_requests_split_evenly_and_each_has_a_twin_with_its_prompt():
    from collections import Counter

    for streams, per_stream in ((1, 2), (1, 6), (8, 2), (32, 3)):
        requests = [
            paired_request(s, r, streams) for s in range(streams) for r in range(per_stream)
        ]
        by_side = [Counter(p for side, p in requests if side == k) for k in (0, 1)]
        assert by_side[0] == by_side[1], (streams, per_stream)
