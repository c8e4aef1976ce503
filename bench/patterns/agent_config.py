"""Agent configurations for layouts (b) sidecar and (c) node, and the node's pod inventory.

Core keys follow the agent's reference (`build/outrider --describe`). The module sections
below are the ONLY place to adapt when the proxy, logs and metrics modules land: each is one
function returning the JSON object for that module's top-level key, and is used only when the
module is in the run's module list. Until the modules' own references exist they are a best
guess from DESIGN.md, marked "ADAPT".

What the bench expects of each module (the contract the sections must express):
  proxy   sidecar: outbound listener 127.0.0.1:4140 inside the pod, routing on the Host header
          ("app-<i>.bench:8080") to the destination pod's sidecar inbound listener
          <pod ip>:4141, which forwards to the local app on 127.0.0.1:8080.
          node: one listener on 10.254.0.1:4140 taking absolute-form (http_proxy style)
          requests, routing on the authority to <pod ip>:8080, caller found by source address.
  logs    tail the pod's CRI files (sidecar: its own pod's; node: every
          <root>/var/log/pods/*/*/*.log), ship NDJSON to the runner's sink at LOG_SINK.
  metrics statsd on 127.0.0.1:8125 (sidecar) or 10.254.0.1:8125 (node); scrape the app's
          /metrics (port 8080) from pods annotated prometheus.io/scrape.
"""
import json
import os

SIDECAR_OUTBOUND = "127.0.0.1:4140"
SIDECAR_INBOUND_PORT = 4141
NODE_PROXY_PORT = 4140
STATSD_PORT = 8125
APP_PORT = 8080


# ---------------------------------------------------------------- module sections (ADAPT)

def proxy_section_sidecar(pod, node):
    """ADAPT: proxy config of pod's sidecar."""
    clusters = {p.name: {"endpoints": [f"{p.ip}:{SIDECAR_INBOUND_PORT}"]} for p in node.pods}
    clusters["local-app"] = {"endpoints": [f"127.0.0.1:{APP_PORT}"]}
    return {
        "listeners": [
            {"name": "outbound", "address": SIDECAR_OUTBOUND, "protocol": "http1"},
            {"name": "inbound", "address": f"{pod.ip}:{SIDECAR_INBOUND_PORT}", "protocol": "http1",
             "cluster": "local-app"},
        ],
        "routes": [{"host": p.service, "cluster": p.name} for p in node.pods],
        "clusters": clusters,
    }


def proxy_section_node(node):
    """ADAPT: proxy config of the node agent (absolute-form requests from every pod)."""
    return {
        "listeners": [{"name": "outbound", "address": f"{node.ip}:{NODE_PROXY_PORT}", "protocol": "http1"}],
        "routes": [{"host": p.service, "cluster": p.name} for p in node.pods],
        "clusters": {p.name: {"endpoints": [f"{p.ip}:{APP_PORT}"]} for p in node.pods},
    }


def logs_section(files_glob, sink):
    """ADAPT: logs config: CRI files in, NDJSON over TCP out (the runner's sink)."""
    return {
        "sources": [{"type": "file", "path": files_glob, "format": "cri"}],
        "outputs": [{"type": "tcp", "address": sink, "format": "ndjson"}],
    }


def metrics_section(statsd_address, scrape):
    """ADAPT: metrics config: a statsd listener, and scraping annotated pods."""
    return {"statsd": {"address": statsd_address}, "scrape": {"enabled": scrape}}


# Metric names (ADAPT) summed over every agent's admin /metrics at the end of a run, for the
# report's Grouping table: what the agents opened and sent on behalf of the pods. A name no agent
# exposes shows as "not exposed" rather than 0.
GROUPING_METRICS = {
    "upstream_connections": "outrider_proxy_upstream_connections_opened_total",
    "log_batches": "outrider_logs_output_batches_total",
    "metric_batches": "outrider_metrics_output_batches_total",
}


# ---------------------------------------------------------------- core keys

def _core(role, admin, state_dir, modules):
    return {
        "role": role,
        "workers": 0,                   # sidecar: 1 loop, node: one per CPU (the defaults)
        "log": {"level": "warn", "format": "text"},
        "admin": {"address": admin},
        # no load balancer watches /ready here: stop at once on SIGTERM (the node role's default
        # keeps serving 5 s first), but let in-flight work finish
        "drain": {"delay": "0s", "timeout": "10s"},
        "state_dir": state_dir,
        "modules": list(modules),
    }


def sidecar_config(pod, node, modules, state_dir, log_root, log_sink):
    c = _core("sidecar", "127.0.0.1:0", state_dir, modules)
    c["identity"] = {"pod_name": pod.name, "pod_namespace": pod.namespace, "pod_uid": pod.uid,
                     "pod_ip": pod.ip, "node_name": "node-1", "labels": {"app": pod.name}}
    if "proxy" in modules:
        c["proxy"] = proxy_section_sidecar(pod, node)
    if "logs" in modules:
        c["logs"] = logs_section(f"{log_root}/var/log/pods/{pod.namespace}_{pod.name}_{pod.uid}/*/*.log", log_sink)
    if "metrics" in modules:
        c["metrics"] = metrics_section(f"127.0.0.1:{STATSD_PORT}", True)
    return c


def node_config(node, modules, state_dir, log_root, log_sink, inventory_file):
    c = _core("node", "127.0.0.1:0", state_dir, modules)
    c["identity"] = {"node_name": "node-1"}
    c["inventory"] = {"file": inventory_file, "poll_interval": "1s"}
    if "proxy" in modules:
        c["proxy"] = proxy_section_node(node)
    if "logs" in modules:
        c["logs"] = logs_section(f"{log_root}/var/log/pods/*/*/*.log", log_sink)
    if "metrics" in modules:
        c["metrics"] = metrics_section(f"{node.ip}:{STATSD_PORT}", True)
    return c


def inventory(node):
    """The node's pod inventory, in the format of CORE-CONTRACT.md."""
    return {"pods": [{
        "namespace": p.namespace, "name": p.name, "uid": p.uid, "node": "node-1",
        "ip": p.ip, "ips": [p.ip], "labels": {"app": p.name},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(APP_PORT)},
    } for p in node.pods]}


def pod_env(pod):
    """The downward API variables a sidecar gets."""
    return {"POD_NAME": pod.name, "POD_NAMESPACE": pod.namespace, "POD_UID": pod.uid,
            "POD_IP": pod.ip, "NODE_NAME": "node-1"}


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)
