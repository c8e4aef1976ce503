"""Agent configurations for layouts (b) sidecar and (c) node, and the node's pod inventory.

Core keys follow the agent's reference (`build/outrider --describe`); the module sections follow
`build/outrider --describe proxy|logs|metrics` (modules/*/README.md). Each module section is one
function returning the JSON object for that module's top-level key, used only when the module is
in the run's module list; nothing else in the bench knows module keys.

What each layout asks of the modules:
  proxy   sidecar: outbound listener 127.0.0.1:4140 inside the pod; a route per destination
          service ("app-<i>.bench:8080", matched on Host) to a cluster of the destination pod's
          sidecar inbound listener <pod ip>:4141, whose default cluster is the local app on
          127.0.0.1:8080 (two agents on every request's path).
          node: one outbound listener on 10.254.0.1:4140 taking absolute-form (http_proxy
          style) requests: the proxy takes the authority from the target (it overrides Host,
          RFC 9112 3.2.2), routes on it to <pod ip>:8080; the caller's pod is found by source
          address in the inventory file. The node agent's inbound listener is off (nothing
          arrives for the pods through it in this set-up).
  logs    tail CRI files (sidecar: its own pod's; node: every <root>/var/log/pods/*/*/*.log) and
          ship JSON lines over TCP to the runner's sink at LOG_SINK.
  metrics statsd on 127.0.0.1:8125 (sidecar) or 10.254.0.1:8125 (node, samples labelled with
          the sending pod by source address); the exposition on 127.0.0.1:9102 (sidecar, in the
          pod) or 10.254.0.1:9102 (node); scrape the app's /metrics (sidecar: a static target;
          node: pods annotated prometheus.io/scrape in the inventory).
"""
import json
import os

SIDECAR_OUTBOUND = "127.0.0.1:4140"
SIDECAR_INBOUND_PORT = 4141
NODE_PROXY_PORT = 4140
STATSD_PORT = 8125
METRICS_PORT = 9102
APP_PORT = 8080
SCRAPE_INTERVAL = "5s"      # at least one scrape of every app inside a 10 s run
LOCAL_APP = "local-app"


# ---------------------------------------------------------------- module sections

def proxy_section_sidecar(pod, node):
    """Outbound on localhost routing on Host to the destination pods' sidecars; inbound on
    the pod IP forwarding to the app on localhost."""
    clusters = [{"name": p.name, "endpoints": [f"{p.ip}:{SIDECAR_INBOUND_PORT}"]} for p in node.pods]
    clusters.append({"name": LOCAL_APP, "endpoints": [f"127.0.0.1:{APP_PORT}"]})
    return {
        "outbound": {"address": SIDECAR_OUTBOUND},
        "inbound": {"address": f"{pod.ip}:{SIDECAR_INBOUND_PORT}", "default_cluster": LOCAL_APP},
        "routes": [{"name": p.name, "listener": "outbound", "authority": p.service, "cluster": p.name}
                   for p in node.pods],
        "clusters": clusters,
    }


def proxy_section_node(node):
    """One outbound listener on the node address for every pod (absolute-form requests)."""
    return {
        "outbound": {"address": f"{node.ip}:{NODE_PROXY_PORT}"},
        "inbound": {"enabled": False},
        "routes": [{"name": p.name, "listener": "outbound", "authority": p.service, "cluster": p.name}
                   for p in node.pods],
        "clusters": [{"name": p.name, "endpoints": [f"{p.ip}:{APP_PORT}"]} for p in node.pods],
    }


def logs_section(files_glob, sink):
    """CRI files in, JSON lines over TCP out (the runner's sink)."""
    return {
        "files": {"paths": [files_glob], "format": "cri", "start": "head"},
        "outputs": [{"name": "sink", "type": "tcp", "address": sink}],
    }


def metrics_section_sidecar():
    return {"listen": f"127.0.0.1:{METRICS_PORT}",
            "statsd": {"udp": f"127.0.0.1:{STATSD_PORT}"},
            "scrape": {"interval": SCRAPE_INTERVAL, "timeout": "2s", "targets": [f"http://127.0.0.1:{APP_PORT}/metrics"]}}


def metrics_section_node(node):
    return {"listen": f"{node.ip}:{METRICS_PORT}",
            "statsd": {"udp": f"{node.ip}:{STATSD_PORT}", "pod_labels": True},
            "scrape": {"interval": SCRAPE_INTERVAL, "timeout": "2s", "discover_pods": True}}


# Metrics summed over every agent's /metrics (the metrics module's endpoint when it is loaded,
# else admin) at the end of a run, for the report's Grouping table. A name no agent exposes
# shows as "not exposed" rather than 0. A value is a metric name, or (name, {label: value})
# to sum only the samples carrying those labels, or (name, {label: "!value"}) to skip them.
GROUPING_METRICS = {
    # open pooled upstream connections (a gauge: the proxy exports no opened-total counter);
    # the sidecars' connections to their own app (cluster local-app) are not to a shared service
    "upstream_connections": ("outrider_proxy_upstream_connections", {"cluster": "!" + LOCAL_APP}),
    "upstream_connections_local": ("outrider_proxy_upstream_connections", {"cluster": LOCAL_APP}),
    "proxy_requests": "outrider_proxy_requests_total",
    "proxy_client_errors": "outrider_proxy_client_errors_total",
    # the logs module counts records and bytes, not batches; tcp output: one connection per worker
    "log_records_shipped": "outrider_logs_shipped_records_total",
    "log_lines_read": "outrider_logs_lines_read_total",
    "log_output_failures": "outrider_logs_output_failures_total",
    "log_dropped": "outrider_logs_dropped_records_total",
    "statsd_lines": "outrider_metrics_statsd_lines_total",
    "statsd_packets": "outrider_metrics_statsd_packets_total",
    "statsd_malformed": "outrider_metrics_statsd_malformed_lines_total",
    "scrapes": "outrider_metrics_scrapes_total",
    "scrapes_ok": ("outrider_metrics_scrapes_total", {"result": "ok"}),
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
        c["metrics"] = metrics_section_sidecar()
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
        c["metrics"] = metrics_section_node(node)
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
