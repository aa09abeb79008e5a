"""The Helm chart: `helm lint`, and `helm template` output that kubernetes-validate accepts and
that keeps vLLM behind the proxy."""

from __future__ import annotations

import functools

import pytest
import yaml

from tests.deploy.tooling import CHART, RULES_FILE, missing, risky_hits, run, tool

KUBERNETES_VERSION = "1.30.0"
CLIENT_KEY = [
    "--set",
    "secret.clientApiKeys[0].key=sk-client-0123456789",
    "--set",
    "secret.clientApiKeys[0].name=app",
]
FULL = CLIENT_KEY + [
    "--set",
    "train.enabled=true",
    "--set",
    "vllm.tensorParallelSize=2",
    "--set",
    "vllm.pipelineParallelSize=2",
]


def render(*args: str) -> list[dict]:
    out = run([tool("helm"), "template", "guard", str(CHART), "--namespace", "llm", *args]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@functools.cache
def full() -> tuple[dict, ...]:
    return tuple(render(*FULL))


def one(kind: str, name_suffix: str = "") -> dict:
    found = [d for d in full() if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("values", [[], FULL], ids=["defaults", "all-enabled"])
def test_helm_lint_passes(values):
    out = run([tool("helm"), "lint", "--strict", str(CHART), *values]).stdout
    assert "0 chart(s) failed" in out


def test_rendered_core_manifests_pass_the_kubernetes_schema():
    try:
        import kubernetes_validate
    except ImportError:
        missing("kubernetes-validate")
    kinds = set()
    for doc in full():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked below against what they carry
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Secret",
        "ConfigMap",
        "Job",
    } <= kinds


def test_the_schema_validator_rejects_a_broken_manifest():
    import kubernetes_validate

    broken = yaml.safe_load(yaml.safe_dump(one("Deployment", "-proxy")))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_prometheus_rule_carries_the_shared_rule_file(tmp_path):
    rule = one("PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    path = tmp_path / "from-chart.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    run([tool("promtool"), "check", "rules", str(path)])


def test_network_policy_lets_only_the_proxy_and_monitoring_reach_vllm():
    policy = one("NetworkPolicy")
    vllm_pods = one("Deployment", "-vllm")["spec"]["template"]["metadata"]["labels"]
    proxy_pods = one("Deployment", "-proxy")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= vllm_pods.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    pod_peers = [p["podSelector"]["matchLabels"] for p in sources if "podSelector" in p]
    assert pod_peers == [{k: proxy_pods[k] for k in pod_peers[0]}]
    assert pod_peers[0]["app.kubernetes.io/component"] == "proxy"
    assert all("podSelector" in p or "namespaceSelector" in p for p in sources)
    assert one("Service", "-vllm")["spec"]["type"] == "ClusterIP"


def test_vllm_deployment_gpus_parallelism_key_and_no_risky_flag():
    vllm = container(one("Deployment", "-vllm"))
    args = vllm["args"]
    assert vllm["image"] == "vllm/vllm-openai:v0.33.0"
    assert "--tensor-parallel-size=2" in args and "--pipeline-parallel-size=2" in args
    assert "--served-model-name=deepguard" in args
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == 4
    env = {e["name"]: e for e in vllm["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "DEEPGUARD_UPSTREAM_API_KEY"
    assert risky_hits(args, set(env)) == []
    mounts = {m["name"]: m for m in vllm["volumeMounts"]}
    assert mounts["model"]["readOnly"] is True


def test_risky_extra_args_are_visible_to_the_check():
    docs = render(*CLIENT_KEY, "--set", "vllm.extraArgs[0]=--trust-request-chat-template")
    vllm = container(
        next(
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-vllm")
        )
    )
    assert risky_hits(vllm["args"], set()) == ["--trust-request-chat-template"]


def test_proxy_reads_keys_and_config_from_the_secret_and_scales_with_an_hpa():
    proxy_deploy = one("Deployment", "-proxy")
    proxy = container(proxy_deploy)
    secret = one("Secret")
    assert proxy["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    data = secret["stringData"]
    assert data["DEEPGUARD_AUTH_API_KEYS"] == '[{"key":"sk-client-0123456789","name":"app"}]'
    assert len(data["DEEPGUARD_UPSTREAM_API_KEY"]) >= 32
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["DEEPGUARD_UPSTREAM_URL"] == "http://guard-deepguard-vllm:8000"
    assert "replicas" not in proxy_deploy["spec"]  # the HPA owns the replica count
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == proxy_deploy["metadata"]["name"]
    pod = proxy_deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_service_monitor_selects_the_proxy_and_vllm_services():
    monitor = one("ServiceMonitor")
    wanted = monitor["spec"]["selector"]
    values = wanted["matchExpressions"][0]["values"]
    selected = [
        s
        for s in full()
        if s["kind"] == "Service"
        and wanted["matchLabels"].items() <= s["metadata"]["labels"].items()
        and s["metadata"]["labels"]["app.kubernetes.io/component"] in values
    ]
    assert sorted(s["metadata"]["name"] for s in selected) == [
        "guard-deepguard-proxy",
        "guard-deepguard-vllm",
    ]
    port = monitor["spec"]["endpoints"][0]["port"]
    assert all(any(p["name"] == port for p in s["spec"]["ports"]) for s in selected)


def test_training_job_runs_accelerate_launch_on_several_gpus():
    job = one("Job")
    train = job["spec"]["template"]["spec"]["containers"][0]
    command = train["command"] + train["args"]
    assert command[:2] == ["accelerate", "launch"]
    assert "--multi_gpu" in command and "--num_processes=4" in command
    script = command.index("/opt/deepguard/bin/deepguard")
    assert command[script + 1] == "train"
    assert train["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_grafana_dashboard_configmap_holds_the_dashboard():
    from tests.deploy.tooling import DASHBOARD_FILE

    cm = one("ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["deepguard-dashboard.json"].strip() == DASHBOARD_FILE.read_text().strip()
