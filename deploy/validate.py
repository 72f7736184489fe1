"""Structural checks of the deployment files, run by deploy/validate.sh in its venv.

    validate.py split RENDERED OUT_CORE OUT_CRDS     core kinds vs. CRD objects
    validate.py crds FILE                            strict schema of ServiceMonitors, PrometheusRules
                                                     and cert-manager Certificates
    validate.py rules RENDERED OUT                   the rendered PrometheusRule's groups as a rule file
    validate.py chart CASE RENDERED                  what the chart must render (per case)
    validate.py toml FILE                            a TOML file parses
    validate.py compose FILE                         the local cluster is complete and consistent
    validate.py alerts RULES RUNBOOK                 every alert has severity/summary/description and a
                                                     runbook_url to its own section of RUNBOOK;
                                                     recording rules named level:metric:operation
    validate.py dashboards DIR PROVISIONING_DIR OUT_RULES
                                                     dashboard structure; their PromQL as rules
                                                     for `promtool check rules`
    validate.py links ROOT                           deploy/ links to the chart's rules and dashboards
    validate.py metrics ALERTS DASHBOARD_DIR         only contract metric names are queried

Exits non-zero with a message naming the file and the problem.
"""

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

# The operations contract (metric names are final). Histograms also expose _bucket, _sum
# and _count series; `up` comes from Prometheus itself.
COUNTERS_GAUGES = {
    "switchyard_edge_connections",
    "switchyard_edge_connection_limit",
    "switchyard_edge_sessions",
    "switchyard_cluster_sessions_online",
    "switchyard_edge_logins_total",
    "switchyard_edge_stanzas_in_total",
    "switchyard_edge_stanzas_out_total",
    "switchyard_edge_received_bytes_total",
    "switchyard_edge_sent_bytes_total",
    "switchyard_edge_tls_handshake_failures_total",
    "switchyard_edge_stream_errors_total",
    "switchyard_edge_slow_consumer_closes_total",
    "switchyard_edge_link_in_flight",
    "switchyard_edge_link_in_flight_limit",
    "switchyard_edge_link_resends_total",
    "switchyard_edge_router_links_up",
    "switchyard_edge_websocket_refused_total",
    "switchyard_tls_certificate_expiry_timestamp_seconds",
    "switchyard_router_stanzas_routed_total",
    "switchyard_router_stanza_errors_total",
    "switchyard_router_edge_links",
    "switchyard_router_registry_cache_hits_total",
    "switchyard_router_registry_cache_misses_total",
    "switchyard_router_offline_stored_total",
    "switchyard_router_offline_delivered_total",
    "switchyard_router_reaped_sessions_total",
    "switchyard_storage_errors_total",
    "switchyard_storage_pool_connections",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "switchyard_build_info",
}
HISTOGRAMS = {
    "switchyard_edge_login_duration_seconds",
    "switchyard_edge_routing_latency_seconds",
    "switchyard_router_route_duration_seconds",
    "switchyard_storage_call_duration_seconds",
}
ALLOWED = (
    COUNTERS_GAUGES
    | {"up"}
    | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
)

GRAFANA_VARS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def die(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        die(msg)


def load_docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


# ----------------------------------------------------------------------------- chart


CRD_GROUPS = ("monitoring.coreos.com/", "cert-manager.io/")


def split(rendered, out_core, out_crds):
    """Core Kubernetes kinds go to kubernetes-validate; CRD objects (ServiceMonitor and
    PrometheusRule of monitoring.coreos.com, cert-manager.io Certificates) have no schema
    there and are checked by `crds`."""
    core, crds = [], []
    for doc in load_docs(rendered):
        (crds if doc["apiVersion"].startswith(CRD_GROUPS) else core).append(doc)
    Path(out_core).write_text(yaml.safe_dump_all(core, sort_keys=False))
    Path(out_crds).write_text(yaml.safe_dump_all(crds, sort_keys=False) if crds else "")
    print(f"{len(core)} core objects, {len(crds)} CRD objects")


def strict_schema(node):
    """Reject unknown fields, as kubernetes-validate --strict does for core kinds."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            strict_schema(v)
    elif isinstance(node, list):
        for v in node:
            strict_schema(v)
    return node


def crds(path):
    import jsonschema
    from cloudcoil.models.cert_manager.v1 import Certificate
    from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor

    models = {("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
              ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
              ("cert-manager.io/v1", "Certificate"): Certificate}
    validators = {}
    counts = {}
    docs = load_docs(path)
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        check(key in models, f"{path}: unexpected CRD kind {key}")
        if key not in validators:
            schema = strict_schema(models[key].model_json_schema(by_alias=True, mode="validation"))
            validators[key] = jsonschema.Draft202012Validator(schema)
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validators[key].iter_errors(doc)]
        check(not errors, f"{doc['kind']} {doc['metadata']['name']}: " + "; ".join(errors))
        counts[doc["kind"]] = counts.get(doc["kind"], 0) + 1
    print(", ".join(f"{n} {kind}(s)" for kind, n in sorted(counts.items()))
          + " valid (prometheus-operator v1 and cert-manager v1 schemas, unknown fields rejected)")


def rules(rendered, out):
    """The rendered PrometheusRule's groups as a Prometheus rule file, for promtool."""
    (rule,) = [d for d in load_docs(rendered) if d["kind"] == "PrometheusRule"]
    Path(out).write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))


# What each validate.sh case must render. Secrets named here are expected to exist in the
# cluster already (existingSecret values); any other referenced Secret must be rendered.
# `websocket`: the listen.websocket_* keys the ConfigMap must carry (WEBSOCKET_DEFAULT unless
# given; None = the WebSocket listener is off, so no port 5443 anywhere).
# `components`: (Secret, key) of SWITCHYARD_COMPONENTS on edges and routers, with the
# component listener on 5347 behind a ClusterIP Service; absent = no trace of it.
CASES = {
    "default": dict(hpa=True, pdb=2, servicemonitor=False, networkpolicy=True, migrate=True,
                    tls=False, admin=False, lb_type="LoadBalancer", ports=(5222, 5223, 5443), external=set()),
    "ci": dict(hpa=False, pdb=1, servicemonitor=True, networkpolicy=True, migrate=True, tls=True,
               admin=True, lb_type="LoadBalancer", ports=(5222, 443, 5443), spread={"edge": "custom"},
               external={"switchyard-db", "switchyard-redis", "switchyard-admin", "example-org-tls"},
               websocket=dict(websocket_tls=True,
                              websocket_origins=["https://chat.example.org", "https://app.example.org:8443"],
                              websocket_url="wss://xmpp.example.org:5443/xmpp-websocket")),
    "example": dict(hpa=True, pdb=2, servicemonitor=True, networkpolicy=True, migrate=True, tls=True,
                    admin=False, lb_type="LoadBalancer", ports=(5222, 5223, 5443), external={"example-org-tls"}),
    "created-secrets": dict(hpa=False, pdb=0, servicemonitor=False, networkpolicy=True, migrate=False,
                            tls=True, admin=True, lb_type="ClusterIP", ports=(5222, 5223), external=set(),
                            websocket=None),
    "cert-manager": dict(hpa=True, pdb=2, servicemonitor=False, networkpolicy=True, migrate=True,
                         tls=False, admin=False, lb_type="LoadBalancer", ports=(5222, 5223, 5443), external=set(),
                         cert_manager=True),
    # deploy/helm-values-all-features.yaml: the extension points of both Deployments, the
    # PrometheusRule, the dashboard ConfigMaps and the client certificate from cert-manager.
    "all-features": dict(hpa=True, pdb=2, servicemonitor=True, networkpolicy=True, migrate=True,
                         tls=True, admin=False, lb_type="LoadBalancer", ports=(5222, 5223, 5443),
                         websocket=dict(websocket_tls=False, websocket_origins=[], websocket_url=""),
                         client_cert=["example.org", "chat.example.org"],
                         prometheusrule=dict(objective="0.995",
                                             runbook_base="https://git.example.org/xmpp/switchyard/-/blob/v0.1.0/"),
                         dashboards=dict(label="grafana_dashboard", value="1"),
                         external={"database-proxy-credentials", "switchyard-router-env", "switchyard-components"},
                         components=("switchyard-components", "components"),
                         image="registry.example.org/xmpp/switchyard@sha256:" + "0123456789abcdef" * 4,
                         init={"edge": ["wait-for-dns"], "router": []},
                         sidecars={"edge": ["log-shipper"], "router": ["database-proxy"]},
                         startup=True, lifecycle=True, spread={"edge": "custom"}),
    # postgres.credentials from CloudNativePG's <cluster>-app Secret (every part a key of
    # it), its CA from <cluster>-ca; the Redis CA from a ConfigMap under another key.
    "cnpg": dict(hpa=True, pdb=2, servicemonitor=False, networkpolicy=True, migrate=True,
                 tls=False, admin=False, lb_type="LoadBalancer", ports=(5222, 5223, 5443),
                 external={"switchyard-db-app", "switchyard-db-ca"},
                 postgres=dict(env={"URL": "sslmode=verify-full",
                                    "HOST": ("switchyard-db-app", "host", None),
                                    "PORT": ("switchyard-db-app", "port", True),
                                    "DBNAME": ("switchyard-db-app", "dbname", None),
                                    "USER": ("switchyard-db-app", "user", None),
                                    "PASSWORD": ("switchyard-db-app", "password", False)},
                               ca=("secret", "switchyard-db-ca", "ca.crt")),
                 redis_ca=("configMap", "redis-ca", "ca.pem")),
    # postgres.credentials from Bitnami's <release>-postgresql Secret (only the password;
    # host, user and database given as values, which win over the default key names).
    "bitnami": dict(hpa=True, pdb=2, servicemonitor=False, networkpolicy=True, migrate=True,
                    tls=False, admin=False, lb_type="LoadBalancer", ports=(5222, 5223, 5443),
                    external={"switchyard-db-postgresql"},
                    postgres=dict(env={"URL": "sslmode=require",
                                       "HOST": "switchyard-db-postgresql.db.svc",
                                       "DBNAME": "switchyard",
                                       "USER": "switchyard",
                                       "PASSWORD": ("switchyard-db-postgresql", "password", False)})),
}
# listen.websocket_* as the binary's defaults (edge.websocket in the chart's values.yaml).
WEBSOCKET_DEFAULT = dict(websocket_tls=True, websocket_origins=[], websocket_url="")
# The default topology spread of each role: zones, then nodes, soft.
DEFAULT_SPREAD = [("topology.kubernetes.io/zone", "ScheduleAnyway"), ("kubernetes.io/hostname", "ScheduleAnyway")]
CLUSTER_TLS_DIR = "/etc/switchyard/cluster-tls"
# Where postgres.ca and redis.ca are mounted (the key as ca.crt), and the variable naming it.
CA_DIRS = {"postgres": ("/etc/switchyard/postgres-ca", "SWITCHYARD_POSTGRES__CA_PATH"),
           "redis": ("/etc/switchyard/redis-ca", "SWITCHYARD_REDIS__CA_PATH")}


def postgres_env(c):
    """A container's SWITCHYARD_POSTGRES__* connection variables (the schema aside), by
    suffix: the value, or (Secret, key, optional) for a secretKeyRef."""
    out = {}
    for e in c["env"]:
        name = e["name"]
        if not name.startswith("SWITCHYARD_POSTGRES__") or name in ("SWITCHYARD_POSTGRES__SCHEMA",
                                                                      "SWITCHYARD_POSTGRES__CA_PATH"):
            continue
        if "value" in e:
            out[name.removeprefix("SWITCHYARD_POSTGRES__")] = e["value"]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            out[name.removeprefix("SWITCHYARD_POSTGRES__")] = (ref["name"], ref["key"], ref.get("optional"))
    return out


def check_ca(case, who, c, pod, service, want):
    """want: (kind, name, key) of postgres.ca / redis.ca, or None: mounted read-only as a
    directory holding ca.crt, its path in SWITCHYARD_<SERVICE>__CA_PATH; or no trace."""
    directory, var = CA_DIRS[service]
    env = {e["name"]: e for e in c["env"]}
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == directory]
    if want is None:
        check(not mounts and var not in env, f"{case}: {who} has a {service} CA without {service}.ca")
        return
    kind, name, key = want
    check(env.get(var, {}).get("value") == f"{directory}/ca.crt", f"{case}: {who} {var}")
    check(len(mounts) == 1 and mounts[0].get("readOnly") is True and "subPath" not in mounts[0],
          f"{case}: {who} mounts the {service} CA read-only as a directory at {directory}")
    vol = {v["name"]: v for v in pod["volumes"]}[mounts[0]["name"]]
    check(kind in vol and vol[kind].get("secretName" if kind == "secret" else "name") == name
          and vol[kind].get("items") == [{"key": key, "path": "ca.crt"}],
          f"{case}: {who} {service} CA volume from {kind} {name} key {key}, got {vol}")
MONITORING = Path(__file__).resolve().parent.parent / "helm/switchyard/monitoring"
# How monitoring/alerts.yml writes the login SLO's error budget (the chart replaces it).
LOGIN_BUDGET = "(1 - 0.999)"


def chart(case, rendered):
    want = CASES[case]
    docs = load_docs(rendered)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind, component):
        found = [d for d in by_kind.get(kind, [])
                 if d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
        check(len(found) == 1, f"{case}: expected one {kind} for {component}, found {len(found)}")
        return found[0]

    for d in docs:
        labels = d["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                    "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"):
            check(key in labels, f"{case}: {d['kind']} {d['metadata']['name']} lacks label {key}")
        check(len(d["metadata"]["name"]) <= 63, f"{case}: name too long: {d['metadata']['name']}")
    check(not by_kind.get("StatefulSet"), f"{case}: the single-node StatefulSet is gone")

    cm = one("ConfigMap", "config")
    cfg = tomllib.loads(cm["data"]["switchyard.toml"])
    ns = "xmpp"
    headless = [s for s in by_kind["Service"] if s["spec"].get("clusterIP") == "None"]
    check(len(headless) == 1, f"{case}: one headless Service expected")
    headless = headless[0]
    check(headless["metadata"]["labels"]["app.kubernetes.io/component"] == "router", f"{case}: headless is the routers'")
    check([p["port"] for p in headless["spec"]["ports"]] == [7400], f"{case}: headless Service exposes 7400 only")
    expect_routers = [f"{headless['metadata']['name']}.{ns}.svc.cluster.local:7400"]
    check(cfg["cluster"]["routers"] == expect_routers,
          f"{case}: cluster.routers {cfg['cluster'].get('routers')} != {expect_routers}")
    check(cfg["cluster"]["rpc_listen"].endswith(":7400"), f"{case}: rpc_listen")
    check(cfg["admin"]["listen"].endswith(":9400"), f"{case}: admin.listen")
    check(cfg["data_dir"] == "/var/lib/switchyard", f"{case}: data_dir")
    listen = dict(cfg["listen"])
    check(isinstance(listen.pop("proxy_protocol", None), bool), f"{case}: listen.proxy_protocol")
    # Dual stack (the binary falls back to IPv4 where a node has no IPv6).
    websocket = want.get("websocket", WEBSOCKET_DEFAULT)
    expect_listen = {"c2s": "[::]:5222", "c2s_direct_tls": "[::]:5223",
                     "websocket": "[::]:5443" if websocket is not None else ""}
    expect_listen.update(websocket if websocket is not None else {})
    if websocket is None:
        for key in WEBSOCKET_DEFAULT:
            listen.pop(key, None)
    components = want.get("components")
    if components is not None:
        expect_listen["component"] = "[::]:5347"
    # The component secrets reach the pods from a Secret, never through the ConfigMap.
    check("components" not in cfg, f"{case}: [[components]] in the ConfigMap")
    check(listen == expect_listen, f"{case}: listen {listen} != {expect_listen}")
    check(cfg["domains"], f"{case}: domains")
    check(("cert_path" in cfg.get("tls", {})) == want["tls"], f"{case}: tls paths present = {want['tls']}")
    for section, secret_key in (("postgres", "url"), ("postgres", "host"), ("postgres", "port"),
                                ("postgres", "user"), ("postgres", "password"), ("postgres", "dbname"),
                                ("redis", "urls"), ("admin", "token")):
        check(secret_key not in cfg.get(section, {}), f"{case}: secret {section}.{secret_key} in the ConfigMap")
    pg_want = want.get("postgres")
    ca_want = {"postgres": (pg_want or {}).get("ca"), "redis": want.get("redis_ca")}
    # postgres.ca and redis.ca set the paths through the environment, not the file.
    for section, ca in ca_want.items():
        if ca:
            check("ca_path" not in cfg.get(section, {}), f"{case}: {section}.ca_path in the ConfigMap too")
    router_pg_env = None
    t = cfg.get("timeouts", {})
    need = t.get("drain_delay_secs", 5) + t.get("shutdown_grace_secs", 10) + 5

    # The edge-router link: mutual TLS, one Secret per role (from cert-manager or the chart).
    headless_name = f"{headless['metadata']['name']}.{ns}.svc.cluster.local"
    check(cfg["cluster"].get("tls") is True, f"{case}: cluster.tls")
    check({k: cfg["cluster"].get(k) for k in ("tls_ca_path", "tls_cert_path", "tls_key_path")}
          == {"tls_ca_path": f"{CLUSTER_TLS_DIR}/ca.crt", "tls_cert_path": f"{CLUSTER_TLS_DIR}/tls.crt",
              "tls_key_path": f"{CLUSTER_TLS_DIR}/tls.key"}, f"{case}: cluster TLS paths")
    check(cfg["cluster"].get("tls_server_name") == headless_name, f"{case}: cluster.tls_server_name")
    certificates = by_kind.get("Certificate", [])
    cluster_certs = [c for c in certificates if "cluster-tls-" in c["spec"]["secretName"]]
    client_certs = [c for c in certificates if c not in cluster_certs]
    check(len(cluster_certs) == (2 if want.get("cert_manager") else 0), f"{case}: cluster TLS Certificates")
    check(len(client_certs) == (1 if want.get("client_cert") else 0), f"{case}: client TLS Certificate")
    for cert in client_certs:
        spec = cert["spec"]
        check(spec["dnsNames"] == want["client_cert"], f"{case}: client Certificate names {spec['dnsNames']}")
        check("server auth" in spec["usages"] and spec["issuerRef"]["name"], f"{case}: client Certificate usages/issuer")
    cluster_tls = {}
    for cert in cluster_certs:
        role = cert["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = cert["spec"]
        check({"server auth", "client auth"} <= set(spec["usages"]), f"{case}: {role} Certificate usages")
        check(spec["issuerRef"]["name"], f"{case}: {role} Certificate issuer")
        cluster_tls[role] = (spec["secretName"], spec["dnsNames"])
    for secret in by_kind.get("Secret", []):
        name = secret["metadata"]["name"]
        if "cluster-tls-" in name:
            check(secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"ca.crt", "tls.crt", "tls.key"},
                  f"{case}: {name} holds ca.crt, tls.crt and tls.key")
            cluster_tls[secret["metadata"]["labels"]["app.kubernetes.io/component"]] = (name, None)
    check(set(cluster_tls) == {"edge", "router"}, f"{case}: cluster TLS for both roles, got {set(cluster_tls)}")
    if want.get("cert_manager"):
        check(cluster_tls["router"][1][0] == headless_name, f"{case}: router certificate names {headless_name}")

    rendered_secrets = {s["metadata"]["name"] for s in by_kind.get("Secret", [])}
    rendered_secrets |= {c["spec"]["secretName"] for c in certificates}
    for role in ("edge", "router"):
        dep = one("Deployment", role)
        pod = dep["spec"]["template"]["spec"]
        check(("replicas" in dep["spec"]) != want["hpa"], f"{case}: {role} replicas vs HPA")
        check(pod["terminationGracePeriodSeconds"] >= need,
              f"{case}: {role} terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} < {need}")
        check(pod["securityContext"]["runAsNonRoot"] is True, f"{case}: {role} runAsNonRoot")
        check(pod.get("automountServiceAccountToken") is False, f"{case}: {role} token mounted")
        # The role's container first, then any sidecars (edge.sidecars / router.sidecars).
        c, *sidecars = pod["containers"]
        check(c["name"] == role and c["args"] == ["serve", "--roles", role], f"{case}: {role} container and args")
        check([s["name"] for s in sidecars] == want.get("sidecars", {}).get(role, []), f"{case}: {role} sidecars")
        check([i["name"] for i in pod.get("initContainers", [])] == want.get("init", {}).get(role, []),
              f"{case}: {role} init containers")
        if "image" in want:
            check(c["image"] == want["image"], f"{case}: {role} image {c['image']} != {want['image']}")
        check(("startupProbe" in c) == want.get("startup", False), f"{case}: {role} startup probe")
        if "startupProbe" in c:
            check(c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}, f"{case}: {role} startup probe")
        check(("lifecycle" in c) == want.get("lifecycle", False), f"{case}: {role} lifecycle hooks")
        # Topology spread: every constraint selects pods (a constraint without a selector
        # counts nothing); without values of its own a role spreads over zones and nodes.
        selector = dep["spec"]["selector"]["matchLabels"]
        spread = pod.get("topologySpreadConstraints", [])
        check(all(t.get("labelSelector") for t in spread), f"{case}: {role} spread constraint without labelSelector")
        if want.get("spread", {}).get(role, "default") == "default":
            check([(t["topologyKey"], t["whenUnsatisfiable"]) for t in spread] == DEFAULT_SPREAD
                  and all(t["maxSkew"] == 1 and t["labelSelector"] == {"matchLabels": selector} for t in spread),
                  f"{case}: {role} default topology spread {spread}")
        sc = c["securityContext"]
        check(sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
              and sc["capabilities"]["drop"] == ["ALL"], f"{case}: {role} container securityContext")
        check("limits" in c["resources"] and "requests" in c["resources"], f"{case}: {role} resources")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        check(ports.get("admin") == 9400, f"{case}: {role} admin port")
        if role == "edge":
            check(ports.get("xmpp-client") == 5222 and ports.get("xmpps-client") == 5223, f"{case}: edge ports")
            check(ports.get("xmpp-websocket") == (5443 if websocket is not None else None),
                  f"{case}: edge WebSocket port")
            check(ports.get("xmpp-component") == (5347 if components is not None else None),
                  f"{case}: edge component port")
        else:
            check(ports.get("grpc") == 7400, f"{case}: router grpc port")
            check("xmpp-component" not in ports, f"{case}: routers have no component port")
        check(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}, f"{case}: {role} liveness")
        check(c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}, f"{case}: {role} readiness")
        env = {e["name"]: e for e in c["env"]}
        check(env["SWITCHYARD_CONFIG"]["value"] == "/etc/switchyard/switchyard.toml", f"{case}: SWITCHYARD_CONFIG")
        # The image's ENV SWITCHYARD_DATA_DIR=/data would beat data_dir in the file.
        check(env["SWITCHYARD_DATA_DIR"]["value"] == cfg["data_dir"], f"{case}: {role} SWITCHYARD_DATA_DIR")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        for path in ("/var/lib/switchyard", "/tmp"):
            check(path in mounts and "emptyDir" in vols[mounts[path]], f"{case}: {role} {path} is an emptyDir")
        check(vols[mounts["/etc/switchyard/switchyard.toml"]]["configMap"]["name"] == cm["metadata"]["name"],
              f"{case}: {role} config mount")
        tls_mount = [m for m in c["volumeMounts"] if m["mountPath"] == CLUSTER_TLS_DIR]
        check(len(tls_mount) == 1 and tls_mount[0].get("readOnly") and "subPath" not in tls_mount[0],
              f"{case}: {role} mounts its cluster TLS Secret as a directory, read-only")
        check(vols[tls_mount[0]["name"]]["secret"]["secretName"] == cluster_tls[role][0],
              f"{case}: {role} mounts its own cluster TLS Secret")
        # Edges check the component secrets, routers route by the domains: both get them.
        if components is not None:
            ref = env.get("SWITCHYARD_COMPONENTS", {}).get("valueFrom", {}).get("secretKeyRef", {})
            check((ref.get("name"), ref.get("key")) == components,
                  f"{case}: {role} SWITCHYARD_COMPONENTS from Secret {components}, got {ref}")
        else:
            check("SWITCHYARD_COMPONENTS" not in env, f"{case}: {role} SWITCHYARD_COMPONENTS without components")
        if role == "router":
            check("secretKeyRef" in env["SWITCHYARD_REDIS__URLS"]["valueFrom"], f"{case}: SWITCHYARD_REDIS__URLS from a Secret")
            router_pg_env = postgres_env(c)
            if pg_want is None:
                check(set(router_pg_env) == {"URL"} and "secretKeyRef" in env["SWITCHYARD_POSTGRES__URL"]["valueFrom"],
                      f"{case}: SWITCHYARD_POSTGRES__URL from a Secret, and nothing else: {router_pg_env}")
            else:
                # postgres.credentials: the parts from the Secret's keys or values; the URL
                # carries only the TLS mode, the password always comes from the Secret.
                check(router_pg_env == pg_want["env"], f"{case}: router PostgreSQL env {router_pg_env} != {pg_want['env']}")
                check(re.fullmatch(r"sslmode=[a-z-]+", router_pg_env["URL"]) is not None
                      and isinstance(router_pg_env["PASSWORD"], tuple), f"{case}: credentials outside a Secret")
            check_ca(case, role, c, pod, "postgres", ca_want["postgres"])
            check_ca(case, role, c, pod, "redis", ca_want["redis"])
            check(("SWITCHYARD_ADMIN__TOKEN" in env) == want["admin"], f"{case}: admin token env")
        else:
            check(not [m for m in c["volumeMounts"] if m["mountPath"] in {d for d, _ in CA_DIRS.values()}],
                  f"{case}: edges mount no PostgreSQL or Redis CA")
        if role == "edge":
            check(("/etc/switchyard/tls" in mounts) == want["tls"], f"{case}: TLS mount")
            for cert in client_certs:
                check(vols[mounts["/etc/switchyard/tls"]]["secret"]["secretName"] == cert["spec"]["secretName"],
                      f"{case}: the edges mount the Secret their Certificate writes")
            check(not any(k.startswith(("SWITCHYARD_POSTGRES", "SWITCHYARD_REDIS")) for k in env),
                  f"{case}: edges never see PostgreSQL or Redis")
        refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e]
        refs += [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
        refs += [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
        for name in refs:
            check(name in rendered_secrets or name in want["external"],
                  f"{case}: {role} references Secret {name}, neither rendered nor expected to exist")

    svc = [s for s in by_kind["Service"] if s["spec"]["ports"][0]["name"] == "xmpp-client"]
    check(len(svc) == 1, f"{case}: one client Service expected")
    svc = svc[0]
    check(svc["spec"]["type"] == want["lb_type"], f"{case}: client Service type {svc['spec']['type']}")
    check(tuple(p["port"] for p in svc["spec"]["ports"]) == want["ports"], f"{case}: client ports")
    client_port_names = ["xmpp-client", "xmpps-client"] + (["xmpp-websocket"] if websocket is not None else [])
    check([p["targetPort"] for p in svc["spec"]["ports"]] == client_port_names, f"{case}: client target ports")
    if want["lb_type"] != "ClusterIP":
        check(svc["spec"].get("externalTrafficPolicy") in ("Local", "Cluster"), f"{case}: externalTrafficPolicy")
    admin_svcs = [s for s in by_kind["Service"] if s["spec"]["ports"][0]["name"] == "admin"]
    check(sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in admin_svcs) == ["edge", "router"]
          and all(s["spec"].get("type") == "ClusterIP" for s in admin_svcs), f"{case}: one ClusterIP admin Service per role")
    # XEP-0114 components: a ClusterIP Service of its own, never a port of the client Service.
    component_svcs = [s for s in by_kind["Service"]
                      if any(p["name"] == "xmpp-component" or p.get("targetPort") == "xmpp-component"
                             for p in s["spec"]["ports"])]
    if components is None:
        check(not component_svcs, f"{case}: component Service without components")
    else:
        check(len(component_svcs) == 1, f"{case}: one component Service expected")
        cs = component_svcs[0]["spec"]
        check(cs.get("type") == "ClusterIP" and cs.get("clusterIP") != "None"
              and [(p["port"], p["targetPort"]) for p in cs["ports"]] == [(5347, "xmpp-component")]
              and cs["selector"] == one("Deployment", "edge")["spec"]["selector"]["matchLabels"],
              f"{case}: component Service: ClusterIP, 5347 to the edges' xmpp-component only")

    check(len(by_kind.get("HorizontalPodAutoscaler", [])) == (2 if want["hpa"] else 0), f"{case}: HPAs")
    check(len(by_kind.get("PodDisruptionBudget", [])) == want["pdb"], f"{case}: PDBs")
    check(len(by_kind.get("ServiceMonitor", [])) == (2 if want["servicemonitor"] else 0), f"{case}: ServiceMonitors")
    for sm in by_kind.get("ServiceMonitor", []):
        relabel = sm["spec"]["endpoints"][0]["relabelings"][0]
        check(relabel["targetLabel"] == "role" and relabel["replacement"] in ("edge", "router"), f"{case}: role label")
    monitoring_checks(case, want, by_kind)
    nps = by_kind.get("NetworkPolicy", [])
    check(len(nps) == (2 if want["networkpolicy"] else 0), f"{case}: NetworkPolicies")
    for np in nps:
        if np["metadata"]["labels"]["app.kubernetes.io/component"] == "edge":
            clients = [p["port"] for p in np["spec"]["ingress"][0]["ports"]]
            check(clients == client_port_names, f"{case}: edge NetworkPolicy client ports {clients}")
            # The component port only from componentFrom (default: this namespace's pods).
            rules = [r for r in np["spec"]["ingress"] if any(p["port"] == "xmpp-component" for p in r["ports"])]
            if components is None:
                check(not rules, f"{case}: edge NetworkPolicy opens the component port without components")
            else:
                check(len(rules) == 1 and [p["port"] for p in rules[0]["ports"]] == ["xmpp-component"]
                      and rules[0].get("from") == [{"podSelector": {}}],
                      f"{case}: edge NetworkPolicy: component port only from this namespace, got {rules}")
        if np["metadata"]["labels"]["app.kubernetes.io/component"] == "router":
            grpc = [r for r in np["spec"]["ingress"] if r["ports"][0]["port"] == "grpc"][0]
            check(grpc["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "edge",
                  f"{case}: router 7400 only from edges")
    jobs = by_kind.get("Job", [])
    check(len(jobs) == (1 if want["migrate"] else 0), f"{case}: migration Job")
    for job in jobs:
        check(job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade", f"{case}: hook")
        (c,) = job["spec"]["template"]["spec"]["containers"]
        check(c["args"] == ["migrate"], f"{case}: migrate args")
        if "image" in want:
            check(c["image"] == want["image"], f"{case}: migrate image {c['image']}")
        hook_secrets = {s["metadata"]["name"] for s in by_kind.get("Secret", [])
                        if "helm.sh/hook" in s["metadata"].get("annotations", {})}
        job_pg_env = postgres_env(c)
        if pg_want is None:
            ref = [e for e in c["env"] if e["name"] == "SWITCHYARD_POSTGRES__URL"][0]["valueFrom"]["secretKeyRef"]["name"]
            check(ref in hook_secrets or ref in want["external"],
                  f"{case}: the migrate Job must use a hook Secret or an existing one, not {ref}")
        else:
            # The same connection as the routers', straight from the existing Secret.
            check(job_pg_env == router_pg_env, f"{case}: migrate Job PostgreSQL env {job_pg_env} != routers' {router_pg_env}")
            check(not hook_secrets, f"{case}: a hook Secret {hook_secrets} for postgres.credentials")
            refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e]
            check(all(r in want["external"] for r in refs), f"{case}: the migrate Job references {refs}")
        check_ca(case, "migrate Job", c, job["spec"]["template"]["spec"], "postgres", ca_want["postgres"])
    print(f"{case}: {len(docs)} objects as expected")


def monitoring_checks(case, want, by_kind):
    """The PrometheusRule carries monitoring/alerts.yml (objective and runbook base
    substituted), the dashboard ConfigMaps carry monitoring/dashboards, labelled."""
    prs = by_kind.get("PrometheusRule", [])
    check(len(prs) == (1 if "prometheusrule" in want else 0), f"{case}: PrometheusRules")
    for pr in prs:
        objective, base = want["prometheusrule"]["objective"], want["prometheusrule"]["runbook_base"]
        source = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
        groups = pr["spec"]["groups"]
        check([g["name"] for g in groups] == [g["name"] for g in source], f"{case}: PrometheusRule groups")
        burns = 0
        for group, src in zip(groups, source):
            check(len(group["rules"]) == len(src["rules"]), f"{case}: rules of group {group['name']}")
            for rule, orig in zip(group["rules"], src["rules"]):
                want_rule = dict(orig, expr=orig["expr"].replace(LOGIN_BUDGET, f"(1 - {objective})"))
                if "annotations" in orig:
                    want_rule["annotations"] = dict(orig["annotations"],
                                                    runbook_url=base + orig["annotations"]["runbook_url"])
                check(rule == want_rule, f"{case}: rule {orig.get('alert') or orig['record']} differs from "
                      f"monitoring/alerts.yml beyond the objective and runbook base")
                burns += LOGIN_BUDGET in orig["expr"]
        check(burns == 2, f"{case}: {burns} burn-rate alerts carry the objective, expected 2")
    dashboards = [c for c in by_kind.get("ConfigMap", [])
                  if c["metadata"]["labels"]["app.kubernetes.io/component"] == "monitoring"]
    files = sorted((MONITORING / "dashboards").glob("*.json"))
    check(len(dashboards) == (len(files) if "dashboards" in want else 0), f"{case}: dashboard ConfigMaps")
    if dashboards:
        label, value = want["dashboards"]["label"], want["dashboards"]["value"]
        by_file = {}
        for c in dashboards:
            check(c["metadata"]["labels"].get(label) == value, f"{case}: {c['metadata']['name']} lacks {label}={value}")
            (key,) = c["data"]
            by_file[key] = json.loads(c["data"][key])
        check(by_file == {f.name: json.loads(f.read_text()) for f in files},
              f"{case}: dashboard ConfigMaps differ from monitoring/dashboards")


# ----------------------------------------------------------------------------- compose


def compose(path):
    root = Path(path).parent
    doc = yaml.safe_load(Path(path).read_text())
    services = doc["services"]
    expected = {"redis", "postgres", "migrate", "cluster-certs", "router-1", "router-2", "edge-1",
                "edge-2", "prometheus", "grafana", "jaeger"}
    check(expected <= services.keys(), f"compose: missing services {expected - services.keys()}")
    sy = {n: s for n, s in services.items() if s.get("image") == "switchyard:dev"}
    check(set(sy) == {"migrate", "cluster-certs", "router-1", "router-2", "edge-1", "edge-2"},
          f"compose: switchyard services {set(sy)}")
    check(services["cluster-certs"]["command"][0] == "gen-cluster-certs", "compose: cluster-certs command")
    for name, s in sy.items():
        check(s.get("build", {}).get("dockerfile") == "Dockerfile", f"compose: {name} builds the repo Dockerfile")
    check(services["migrate"]["command"] == ["migrate"], "compose: migrate command")
    for name in ("router-1", "router-2"):
        s = services[name]
        check(s["command"] == ["serve", "--roles", "router"], f"compose: {name} command")
        check(s["depends_on"]["migrate"]["condition"] == "service_completed_successfully", f"compose: {name} waits for migrate")
        env = s["environment"]
        check(json.loads(env["SWITCHYARD_REDIS__URLS"]) == ["redis://redis:6379"], f"compose: {name} redis")
        check(env["SWITCHYARD_POSTGRES__URL"].startswith("postgres://"), f"compose: {name} postgres")
    published = []
    for name in ("edge-1", "edge-2"):
        s = services[name]
        check(s["command"] == ["serve", "--roles", "edge"], f"compose: {name} command")
        routers = json.loads(s["environment"]["SWITCHYARD_CLUSTER__ROUTERS"])
        check(routers == ["router-1:7400", "router-2:7400"], f"compose: {name} cluster.routers {routers}")
        published += [p.rsplit(":", 2)[-1] for p in s.get("ports", [])]
    # Mutual TLS on the link: every router and edge has the certificates from cluster-certs.
    for name in ("router-1", "router-2", "edge-1", "edge-2"):
        s = services[name]
        env = s["environment"]
        check(env.get("SWITCHYARD_CLUSTER__TLS", "true") == "true", f"compose: {name} cluster.tls")
        files = [env.get(f"SWITCHYARD_CLUSTER__TLS_{k}_PATH") for k in ("CA", "CERT", "KEY")]
        check(all(files), f"compose: {name} has the cluster TLS files")
        mounts = {v.split(":")[1]: v.split(":")[0] for v in s.get("volumes", [])}
        certs_dir = files[0].rsplit("/", 1)[0]
        check(mounts.get(certs_dir) == "cluster-certs", f"compose: {name} mounts cluster-certs at {certs_dir}")
        check(s["depends_on"].get("cluster-certs", {}).get("condition") == "service_completed_successfully",
              f"compose: {name} waits for cluster-certs")
    check("5222" in published and "5223" in published and "5443" in published,
          "compose: edge client ports 5222/5223/5443 published")
    for name in ("edge-1", "edge-2"):
        env = services[name]["environment"]
        check(env.get("SWITCHYARD_LISTEN__WEBSOCKET", "").endswith(":5443"), f"compose: {name} listen.websocket")
    for name, s in sy.items():
        if name not in ("migrate", "cluster-certs"):
            check(s["environment"]["SWITCHYARD_TELEMETRY__OTLP_ENDPOINT"] == "http://jaeger:4317",
                  f"compose: {name} traces to jaeger:4317")
    # Prometheus scrapes exactly the four admin ports, with role labels.
    prom = yaml.safe_load((root / "deploy/prometheus/prometheus.yml").read_text())
    job = [j for j in prom["scrape_configs"] if j["job_name"] == "switchyard"][0]
    targets = {t: sc["labels"]["role"] for sc in job["static_configs"] for t in sc["targets"]}
    check(targets == {"edge-1:9400": "edge", "edge-2:9400": "edge", "router-1:9400": "router",
                      "router-2:9400": "router"}, f"compose: prometheus targets {targets}")
    # Every bind-mounted file or directory exists in the repository.
    for name, s in services.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("./"):
                check((root / src).exists(), f"compose: {name} mounts missing {src}")
    print(f"compose: {len(services)} services, prometheus targets and mounts consistent")


# ----------------------------------------------------------------------------- alerts


RUNBOOK_PATH = "deploy/RUNBOOK.md"
# level:metric:operation, where metric is an exported metric (see metrics()).
RECORD_NAME = re.compile(r"([a-z_]+):([a-z_]+):([a-z0-9_]+)")


def anchor(heading):
    """The anchor a Markdown renderer (GitHub, GitLab) gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def alerts(path, runbook):
    doc = yaml.safe_load(Path(path).read_text())
    text = Path(runbook).read_text()
    anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    sections = set(re.findall(r"^## (Switchyard\w+)$", text, re.M))
    names, records = set(), set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                name = rule["record"]
                m = RECORD_NAME.fullmatch(name)
                check(m and m.group(2) in ALLOWED, f"{path}: recording rule {name} is not level:<exported metric>:operation")
                check(name not in records, f"{path}: duplicate recording rule {name}")
                records.add(name)
                continue
            name = rule.get("alert")
            check(name not in names, f"{path}: duplicate alert {name}")
            names.add(name)
            check(rule.get("labels", {}).get("severity") in ("critical", "warning", "info"),
                  f"{path}: {name} severity")
            for key in ("summary", "description", "runbook_url"):
                check(rule.get("annotations", {}).get(key), f"{path}: {name} lacks annotation {key}")
            url = rule["annotations"]["runbook_url"]
            check(url == f"{RUNBOOK_PATH}#{anchor(name)}", f"{path}: {name} runbook_url {url}, "
                  f"expected {RUNBOOK_PATH}#{anchor(name)}")
            check(anchor(name) in anchors, f"{runbook}: no section '## {name}' for its runbook_url")
    check(sections == names, f"{runbook}: alert sections without an alert {sorted(sections - names)}, "
          f"alerts without a section {sorted(names - sections)}")
    print(f"{len(names)} alerts, each with severity, summary, description and a runbook_url to its "
          f"section of {RUNBOOK_PATH}; {len(records)} recording rules")


def links(root):
    """deploy/prometheus/alerts.yml and deploy/grafana/dashboards are symbolic links to the
    chart's copies (docker-compose.yml mounts them; one source of truth)."""
    root = Path(root)
    for link, target in (("deploy/prometheus/alerts.yml", "helm/switchyard/monitoring/alerts.yml"),
                         ("deploy/grafana/dashboards", "helm/switchyard/monitoring/dashboards")):
        path = root / link
        check(path.is_symlink() and path.resolve() == (root / target).resolve(),
              f"{link} must be a symbolic link to {target}")
    print("deploy/prometheus/alerts.yml and deploy/grafana/dashboards link to helm/switchyard/monitoring")


# ----------------------------------------------------------------------------- dashboards


def dashboard_exprs(doc):
    for panel in doc["panels"]:
        for sub in [panel] + panel.get("panels", []):
            for t in sub.get("targets", []):
                yield sub["title"], t["expr"]


def substitute(expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace("$" + var, value).replace("${" + var + "}", value)
    return re.sub(r"\$\{?\w+\}?", "x", expr)


def dashboards(directory, provisioning, out_rules):
    paths = sorted(Path(directory).glob("*.json"))
    check(paths, f"{directory}: no dashboards")
    uids = set()
    groups = []
    for path in paths:
        doc = json.loads(path.read_text())
        where = path.name
        for key in ("uid", "title", "panels", "templating", "schemaVersion", "time"):
            check(key in doc, f"{where}: lacks {key}")
        check(doc["schemaVersion"] >= 36, f"{where}: schemaVersion {doc['schemaVersion']} < 36 (Grafana 10+)")
        check(doc["uid"] not in uids and len(doc["uid"]) <= 40, f"{where}: uid")
        uids.add(doc["uid"])
        check("__inputs" not in doc and doc.get("id") is None, f"{where}: no instance id or __inputs")
        variables = {v["name"]: v for v in doc["templating"]["list"]}
        ds = variables.get("datasource")
        check(ds and ds["type"] == "datasource" and ds["query"] == "prometheus",
              f"{where}: needs a 'datasource' variable of type datasource (prometheus)")
        ids = set()
        rules = []
        for panel in doc["panels"]:
            check(panel["id"] not in ids, f"{where}: duplicate panel id {panel['id']}")
            ids.add(panel["id"])
            gp = panel["gridPos"]
            check(0 <= gp["x"] and gp["x"] + gp["w"] <= 24 and gp["h"] > 0, f"{where}: gridPos of {panel['title']}")
            if panel["type"] == "row":
                continue
            check(panel["type"] in ("timeseries", "stat", "gauge", "bargauge", "table", "heatmap"),
                  f"{where}: panel type {panel['type']}")
            check(panel.get("title") and panel.get("description"), f"{where}: panel {panel['id']} title/description")
            check(panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"},
                  f"{where}: panel {panel['title']} must use the datasource variable")
            check(panel["targets"], f"{where}: panel {panel['title']} has no query")
            for t in panel["targets"]:
                check(t["datasource"]["uid"] == "${datasource}", f"{where}: target datasource in {panel['title']}")
                check(t.get("expr"), f"{where}: empty expr in {panel['title']}")
                used = set(re.findall(r"\$\{?(\w+)\}?", t["expr"])) - set(GRAFANA_VARS)
                check(used <= variables.keys(), f"{where}: {panel['title']} uses undefined variables {used - variables.keys()}")
                rules.append({"record": f"dashboard:{doc['uid'].replace('-', '_')}:{panel['id']}_{t['refId']}",
                              "expr": substitute(t["expr"])})
        for v in variables.values():
            if v["type"] == "query":
                check(v["datasource"]["uid"] == "${datasource}", f"{where}: variable {v['name']} datasource")
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
                check(m, f"{where}: variable {v['name']} query {q}")
                rules.append({"record": f"dashboard:{doc['uid'].replace('-', '_')}:var_{v['name']}",
                              "expr": substitute(m.group(1))})
        groups.append({"name": doc["uid"], "rules": rules})
        print(f"{where}: {len(ids)} panels, {len(rules)} queries, uid {doc['uid']}")
    Path(out_rules).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))

    prov = Path(provisioning)
    dsdoc = yaml.safe_load((prov / "datasources/switchyard.yml").read_text())
    check(any(d["type"] == "prometheus" and d.get("isDefault") for d in dsdoc["datasources"]),
          "provisioning: a default Prometheus data source")
    dbdoc = yaml.safe_load((prov / "dashboards/switchyard.yml").read_text())
    check(dbdoc["apiVersion"] == 1 and dbdoc["providers"][0]["type"] == "file", "provisioning: dashboard provider")
    print("provisioning: data sources and dashboard provider ok")


# ----------------------------------------------------------------------------- metric names

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                   "unless", "bool", "offset", "inf", "nan", "atan2",
                   # aggregation operators, which may stand apart from their "(": sum by (x) (…)
                   "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                   "bottomk", "topk", "quantile", "limitk", "limit_ratio"}


def metric_names(expr):
    e = substitute(expr)
    e = re.sub(r'"(?:\\.|[^"\\])*"', '""', e)
    e = re.sub(r"'(?:\\.|[^'\\])*'", "''", e)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def metrics(alerts_path, dashboard_dir):
    used = {}
    doc = yaml.safe_load(Path(alerts_path).read_text())
    # Series recorded by the rule file may be queried too (their own names are checked by
    # alerts()); they are not listed as used metrics.
    recorded = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
    for g in doc["groups"]:
        for r in g["rules"]:
            for n in metric_names(r["expr"]) - recorded:
                used.setdefault(n, set()).add(f"rule {r.get('alert') or r.get('record')}")
    for path in sorted(Path(dashboard_dir).glob("*.json")):
        d = json.loads(path.read_text())
        for title, expr in dashboard_exprs(d):
            for n in metric_names(expr):
                used.setdefault(n, set()).add(f"{path.name}: {title}")
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                for n in metric_names(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q)):
                    used.setdefault(n, set()).add(f"{path.name}: variable {v['name']}")
    bad = {n: sorted(w) for n, w in used.items() if n not in ALLOWED}
    check(not bad, "metric names outside the operations contract: "
          + "; ".join(f"{n} ({', '.join(w)})" for n, w in sorted(bad.items())))
    print(f"{len(used)} metric names used, all in the contract:")
    for n in sorted(used):
        print(f"  {n}")
    unused = sorted(m for m in COUNTERS_GAUGES | HISTOGRAMS
                    if m not in used and not any(u.startswith(m + "_") for u in used))
    if unused:
        print(f"contract metrics not shown anywhere: {', '.join(unused)}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "split": split,
        "crds": crds,
        "rules": rules,
        "chart": chart,
        "toml": lambda p: (tomllib.loads(Path(p).read_text()), print(f"{p}: TOML ok")),
        "compose": compose,
        "alerts": alerts,
        "links": links,
        "dashboards": dashboards,
        "metrics": metrics,
    }[cmd](*args)


if __name__ == "__main__":
    main()
