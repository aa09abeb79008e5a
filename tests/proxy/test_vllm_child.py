"""The parts of `deepguard serve`'s vLLM child that need no vLLM: the command production flags,
the warm-up phase read from vLLM's log, the progress lines. tests/e2e/vllm runs the real thing."""

from __future__ import annotations

import io

from proxy.vllm_child import TerminalProgress, VllmChild, VllmOptions, find_vllm_python


def options(tmp_path, **kw) -> VllmOptions:
    return VllmOptions(
        model_dir="/models/m", served_name="served", port=8123, log_file=tmp_path / "vllm.log", **kw
    )


def test_command_uses_production_flags_and_a_fresh_key_per_start(tmp_path):
    first, second = options(tmp_path), options(tmp_path)
    cmd = first.command()
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert cmd[1:3] == ["-m", "vllm.entrypoints.launchers.api_server.entry"]
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "8123"
    assert flags["--served-model-name"] == "served" and flags["--model"] == "/models/m"
    assert flags["--max-model-len"] == "2048" and flags["--api-key"] == first.api_key
    assert first.api_key != second.api_key and len(first.api_key) > 30


def test_extra_args_follow_and_the_cpu_cache_size_is_set(tmp_path, monkeypatch):
    for name in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_USE_AOT_COMPILE"):
        monkeypatch.delenv(name, raising=False)
    opts = options(tmp_path, extra_args=["--seed", "1"], kv_cache_gib=3)
    assert opts.command()[-2:] == ["--seed", "1"]
    env = opts.environment()
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3" and env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_USE_AOT_COMPILE"] == "0"  # the compile cache that loads again


def test_configured_python_wins(tmp_path):
    assert find_vllm_python("/opt/vllm/bin/python") == "/opt/vllm/bin/python"


def test_phase_is_the_latest_one_named_in_this_starts_log(tmp_path):
    child = VllmChild(options(tmp_path))
    assert child.phase() == "loading vLLM"  # no log yet
    child.log_path.write_text(
        "--- deepguard: starting vLLM at earlier ---\n... Warming up done ...\n"
        "--- deepguard: starting vLLM at now ---\nINFO Initializing a V1 LLM engine (v0.32.0)\n"
        "INFO [cpu_model_runner.py:68] Starting to load model /models/m...\n"
        "INFO [cpu_model_runner.py:87] Warming up model for the compilation...\n"
    )
    assert child.phase().startswith("compiling the model")  # not the earlier start's phase


def test_progress_prints_a_line_per_phase_or_every_15_s_off_a_terminal():
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    for phase, elapsed in [
        ("loading vLLM", 0),
        ("loading vLLM", 5),
        ("loading weights", 6),
        ("loading weights", 20),
        ("loading weights", 22),
    ]:
        progress(phase, elapsed)
    progress.done("deepguard: vLLM ready after 30s")
    assert stream.getvalue().splitlines() == [
        "deepguard: vLLM warming up, 0s: loading vLLM",
        "deepguard: vLLM warming up, 6s: loading weights",
        "deepguard: vLLM warming up, 22s: loading weights",
        "deepguard: vLLM ready after 30s",
    ]
