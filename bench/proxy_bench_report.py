"""Turn the proxy benchmark's samples into the side-by-side markdown table, ratios and goals."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

LABELS = {
    "direct": "direct",
    "deepguard": "deepguard",
    "litellm": "LiteLLM",
    "relay": "bare relay (uvicorn)",
    "nginx": "nginx",
}
PROXIES = ("deepguard", "litellm")


def label(target: str) -> str:
    """Column name: `deepguard-w2` (deepguard serve --workers 2) reads `deepguard, 2 workers`."""
    if target.startswith("deepguard-w"):
        return f"deepguard, {target.removeprefix('deepguard-w')} workers"
    return LABELS[target]


def pct(samples: list[float], q: int) -> float | None:
    if len(samples) < 2:
        return samples[0] if samples else None
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def fmt(value: float | None, scale: float = 1e3, digits: int = 2) -> str:
    return "—" if value is None else f"{value * scale:.{digits}f}"


def load_phases(concurrency: list[int], paced: list[int]) -> list[tuple[str, str]]:
    """(phase name, key stem) of every loaded phase: `stream_c64` -> `c64`, `paced_c64` -> `paced_c64`."""
    return [(f"stream_c{c}", f"c{c}") for c in concurrency] + [
        (f"paced_c{c}", f"paced_c{c}") for c in paced
    ]


def summarise(
    data: dict[str, dict[str, dict]],
    peak: dict[str, float],
    concurrency: list[int],
    paced: list[int] = (),
) -> dict[str, dict]:
    out: dict[str, dict] = {}
    phases_loaded = load_phases(concurrency, list(paced))
    for target, phases in data.items():
        s: dict = {}
        js, st = phases["json_c1"], phases["stream_c1"]
        for q in (50, 95, 99):
            s[f"json_p{q}"] = pct(js["latency_s"], q)
            s[f"ttft_p{q}"] = pct(st["ttft_s"], q)
        s["chunk_p50"] = pct(st["per_chunk_s"], 50)
        totals = {
            "": [0.0, 0.0, 0.0],
            "paced_": [0.0, 0.0, 0.0],
        }  # answers, proxy CPU, upstream CPU
        loadgen_frac = []
        for name, stem in phases_loaded:
            ph = phases[name]
            # Answers over the phase's whole wall time (ramp and drain included): a proxy slower
            # than the measured window still gets a throughput, and all targets are treated alike.
            wall = ph["loadgen_wall_s"]
            s[f"rps_{stem}"] = ph["completed"] / wall if wall else None
            s[f"lat_{stem}_p50"] = pct(ph["latency_s"], 50)
            s[f"lat_{stem}_p99"] = pct(ph["latency_s"], 99)
            total = totals["paced_" if name.startswith("paced_") else ""]
            total[0] += ph["completed"]  # CPU covers warm-up and drain too
            total[1] += ph["proxy_cpu_s"]
            total[2] += ph["upstream_cpu_s"]
        for ph in phases.values():
            if ph["loadgen_wall_s"]:
                loadgen_frac.append(ph["loadgen_cpu_s"] / ph["loadgen_wall_s"])
        for prefix, (answers, proxy_cpu, upstream_cpu) in totals.items():
            s[f"{prefix}cpu_per_req"] = (
                proxy_cpu / answers if answers and target != "direct" else None
            )
            s[f"{prefix}upstream_cpu_per_req"] = upstream_cpu / answers if answers else None
        s["loadgen_cpu_max"] = max(loadgen_frac) if loadgen_frac else None
        s["peak_rss_mib"] = peak.get(target) if target != "direct" else None
        s["failed"] = sum(sum(ph["errors"].values()) for ph in phases.values())
        s["errors"] = {k: v for ph in phases.values() for k, v in ph["errors"].items()}
        out[target] = s
    direct = out["direct"]
    for target in out:
        if target == "direct":
            continue
        s = out[target]
        for key in (
            "json_p50",
            "json_p95",
            "json_p99",
            "ttft_p50",
            "ttft_p99",
            "chunk_p50",
            *(f"lat_{stem}_p{q}" for _, stem in phases_loaded for q in (50, 99)),
        ):
            if s.get(key) is not None and direct.get(key) is not None:
                s["added_" + key] = s[key] - direct[key]
    return out


def _row(name: str, targets: list[str], cell) -> str:
    return f"| {name} | " + " | ".join(cell(t) for t in targets) + " |"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.3g}x"


def table(
    s: dict[str, dict], concurrency: list[int], paced: list[int] = (), interval_ms: float = 0.0
) -> str:
    targets = list(s)
    head = "| | " + " | ".join(label(t) for t in targets) + " |"
    lines = [head, "|---|" + "---|" * len(targets)]

    def triple(prefix: str, added: bool = False, scale: float = 1e3):
        def cell(t: str) -> str:
            key = ("added_" if added else "") + prefix
            vals = [s[t].get(f"{key}_p{q}") for q in (50, 95, 99)]
            if all(v is None for v in vals):
                return "—"
            return " / ".join(fmt(v, scale) for v in vals)

        return cell

    lines.append(_row("non-streamed latency p50 / p95 / p99, c=1 (ms)", targets, triple("json")))
    lines.append(
        _row(
            "**added** non-streamed latency p50 / p95 / p99, c=1 (ms)",
            targets,
            triple("json", added=True),
        )
    )
    lines.append(_row("time to first token p50 / p95 / p99, c=1 (ms)", targets, triple("ttft")))
    lines.append(
        _row(
            "**added** time to first token p50 / p95 / p99, c=1 (ms)",
            targets,
            triple("ttft", added=True),
        )
    )
    lines.append(
        _row(
            "time per streamed chunk p50, c=1 (µs)",
            targets,
            lambda t: fmt(s[t].get("chunk_p50"), 1e6, 1),
        )
    )
    lines.append(
        _row(
            "**added** time per streamed chunk p50, c=1 (µs)",
            targets,
            lambda t: fmt(s[t].get("added_chunk_p50"), 1e6, 1),
        )
    )
    for _, stem in load_phases(concurrency, list(paced)):
        c = stem.rsplit("c", 1)[1]
        where = (
            f"paced upstream ({interval_ms:g} ms/chunk)"
            if stem.startswith("paced")
            else "instant upstream"
        )
        lines.append(
            _row(
                f"streamed requests/s, {c} concurrent streams, {where}",
                targets,
                lambda t, stem=stem: fmt(s[t].get(f"rps_{stem}"), 1, 0),
            )
        )
        lines.append(
            _row(
                f"streamed latency p50 / p99, {c} concurrent, {where} (ms)",
                targets,
                lambda t, stem=stem: (
                    f"{fmt(s[t].get(f'lat_{stem}_p50'))} / {fmt(s[t].get(f'lat_{stem}_p99'))}"
                ),
            )
        )
        lines.append(
            _row(
                f"**added** streamed latency p50 / p99, {c} concurrent, {where} (ms)",
                targets,
                lambda t, stem=stem: (
                    "—"
                    if t == "direct"
                    else f"{fmt(s[t].get(f'added_lat_{stem}_p50'))} / "
                    f"{fmt(s[t].get(f'added_lat_{stem}_p99'))}"
                ),
            )
        )
    for prefix, where in (("", "instant"), ("paced_", "paced")):
        if prefix and not paced:
            continue
        lines.append(
            _row(
                f"proxy CPU per streamed request, {where} upstream (ms)",
                targets,
                lambda t, prefix=prefix: fmt(s[t].get(f"{prefix}cpu_per_req"), 1e3, 3),
            )
        )
        lines.append(
            _row(
                f"upstream CPU per streamed request, {where} upstream (ms)",
                targets,
                lambda t, prefix=prefix: fmt(s[t].get(f"{prefix}upstream_cpu_per_req"), 1e3, 3),
            )
        )
    lines.append(
        _row("proxy peak RSS (MiB)", targets, lambda t: fmt(s[t].get("peak_rss_mib"), 1, 0))
    )
    lines.append(_row("failed requests", targets, lambda t: str(s[t]["failed"])))
    lines.append(
        _row(
            "load generator CPU, busiest phase (% of one core)",
            targets,
            lambda t: fmt(s[t].get("loadgen_cpu_max"), 100, 0),
        )
    )

    lines += [
        "",
        "| ratio to direct | " + " | ".join(label(t) for t in targets if t != "direct") + " |",
        "|---|" + "---|" * (len(targets) - 1),
    ]
    ratio_rows = [
        ("non-streamed latency p50", "json_p50"),
        ("non-streamed latency p99", "json_p99"),
        ("time to first token p50", "ttft_p50"),
        *((f"streamed requests/s at {c}", f"rps_c{c}") for c in concurrency),
        *((f"streamed requests/s at {c}, paced", f"rps_paced_c{c}") for c in paced),
    ]
    for name, key in ratio_rows:
        lines.append(
            f"| {name} | "
            + " | ".join(
                _ratio(s[t].get(key), s["direct"].get(key)) for t in targets if t != "direct"
            )
            + " |"
        )
    return "\n".join(lines)


def goals(s: dict[str, dict], concurrency: list[int], paced: list[int] = ()) -> str:
    """The issue's goals; the 64-stream ones against both upstreams (instant: the CPU ceiling;
    paced: a model server's pace)."""
    deepguards = [t for t in s if t.startswith("deepguard")]
    dg, direct, ll = s[deepguards[0]], s["direct"], s.get("litellm")
    out = []

    def mark(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    def check(name: str, value: float | None, limit: float, unit: str = "ms") -> None:
        ok = None if value is None else value <= limit
        out.append(f"- {name}: {fmt(value)} {unit} (goal <= {limit * 1e3:g} {unit}): {mark(ok)}")

    check("added p50, non-streamed, c=1", dg.get("added_json_p50"), 0.001)
    check("added p99, non-streamed, c=1", dg.get("added_json_p99"), 0.005)
    loaded = []
    if concurrency:
        loaded.append((f"c{64 if 64 in concurrency else concurrency[0]}", "instant upstream"))
    if paced:
        loaded.append((f"paced_c{64 if 64 in paced else paced[0]}", "paced upstream"))
    for stem, where in loaded:
        c = stem.rsplit("c", 1)[1]
        check(
            f"added p50, streamed, {c} concurrent, {where}", dg.get(f"added_lat_{stem}_p50"), 0.001
        )
        check(
            f"added p99, streamed, {c} concurrent, {where}", dg.get(f"added_lat_{stem}_p99"), 0.005
        )
        rps, base = dg.get(f"rps_{stem}"), direct.get(f"rps_{stem}")
        share = rps / base if rps and base else None
        out.append(
            f"- streamed throughput at {c} concurrent, {where}: {fmt(share, 100, 0)}% of direct "
            f"(goal >= 90%): {mark(None if share is None else share >= 0.9)}"
        )
    # Issue 16's paced goals, per deepguard column (one worker, N workers).
    for t in deepguards:
        who = label(t)
        if 64 in paced:
            for q, limit in ((50, 0.001), (99, 0.003)):
                check(
                    f"{who}: added p{q}, streamed, 64 concurrent, paced upstream",
                    s[t].get(f"added_lat_paced_c64_p{q}"),
                    limit,
                )
        if 256 in paced:
            rps, base = s[t].get("rps_paced_c256"), direct.get("rps_paced_c256")
            share = rps / base if rps and base else None
            out.append(
                f"- {who}: streamed throughput at 256 concurrent, paced upstream: "
                f"{fmt(share, 100, 0)}% of direct (goal >= 95%): "
                f"{mark(None if share is None else share >= 0.95)}"
            )
    if ll is not None:
        for key, name in (
            ("added_json_p50", "added p50, non-streamed, c=1"),
            *(
                (
                    f"added_lat_{stem}_p50",
                    f"added p50, streamed, {stem.rsplit('c', 1)[1]} concurrent, {where}",
                )
                for stem, where in loaded
            ),
        ):
            a, b = dg.get(key), ll.get(key)
            ratio = b / a if a and b and a > 0 else None
            out.append(
                f"- LiteLLM / deepguard, {name}: "
                f"{'—' if ratio is None else f'{ratio:.1f}x'} (goal >= 10x): "
                f"{mark(None if ratio is None else ratio >= 10)}"
            )
    return "\n".join(out)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
    )


def render(
    data: dict, peak: dict, args: argparse.Namespace, litellm_version: str
) -> tuple[dict, str]:
    paced = args.paced_concurrency
    s = summarise(data, peak, args.concurrency, paced)
    text = (
        f"{table(s, args.concurrency, paced, args.token_interval_ms)}\n\n"
        f"Goals:\n{goals(s, args.concurrency, paced)}\n\n"
        f"Machine: {machine()}. Upstream answers {args.pieces} chunks; LiteLLM "
        f"{litellm_version if 'litellm' in s else '(not run)'}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )
    return s, text


# docs/benchmarks.md holds the prose; a run rewrites only the section between these markers.
BEGIN = "<!-- latest-run: begin (bench/proxy_bench.py --write-docs rewrites this section) -->"
END = "<!-- latest-run: end -->"


def replace_section(doc: str, section: str, begin: str = BEGIN, end: str = END) -> str:
    """`doc` with the text between the markers replaced by `section`."""
    start, stop = doc.find(begin), doc.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"the document has no {begin!r} ... {end!r} section to rewrite")
    return doc[: start + len(begin)] + "\n" + section.strip("\n") + "\n" + doc[stop:]


def write_docs(path: Path, text: str, args: argparse.Namespace, argv: list[str] | None) -> None:
    """Rewrite the latest-run section of `path` (the command, table, goals and machine)."""
    flags = " ".join(argv if argv is not None else sys.argv[1:])
    command = f"nice -n 5 .venv/bin/python bench/proxy_bench.py {flags}".rstrip()
    section = "```bash\n" + command + "\n```\n\n" + text
    path.write_text(replace_section(path.read_text(), section))
