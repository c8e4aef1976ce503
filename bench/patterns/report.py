"""Turns the runs' figures into bench/patterns/results/<name>.md, .json and .png."""
import json
import os
import re
import subprocess
import sys

LAYOUT_NAMES = {"a": "(a) no agent", "b": "(b) sidecar per pod", "c": "(c) node agent"}
SEQ_RE = re.compile(r"^\S+ stdout F seq=(\d+) pod=(\S+) ")
NOT_YET = "not measured yet"


# ------------------------------------------------------------------ figures

def percentile_ms(buckets, total, q):
    """buckets: sorted [lo_us, hi_us, count]; the q-quantile as the bucket's midpoint, in ms."""
    if total == 0:
        return float("nan")
    want, cum = q * total, 0
    for lo, hi, c in buckets:
        cum += c
        if cum >= want:
            return (lo + hi) / 2 / 1000.0
    return buckets[-1][1] / 1000.0


def merge_apps(results):
    """Sums the apps' counters and merges their latency histograms."""
    keys = ("sent", "ok", "bad_status", "misrouted", "conn_errors", "timeouts", "dropped", "unfinished",
            "conns_opened", "served")
    out = {k: sum(r[k] for r in results) for k in keys}
    hist = {}
    for r in results:
        for lo, hi, c in r["hist_us"]:
            h = hist.setdefault(lo, [lo, hi, 0])
            h[2] += c
    buckets = sorted(hist.values())
    total = sum(b[2] for b in buckets)
    for name, q in (("p50", 0.50), ("p99", 0.99), ("p999", 0.999)):
        out[name + "_ms"] = percentile_ms(buckets, total, q)
    out["max_ms"] = buckets[-1][1] / 1000.0 if buckets else float("nan")
    out["measured"] = total
    out["failed"] = out["sent"] - out["ok"] + out["dropped"]
    return out


def check_log_files(files):
    """files: [(pod, path, lines the app says it wrote)]. Each file must hold exactly lines
    seq=1..n of its pod, in order: the baseline that loss and duplication are counted against."""
    bad = []
    total = 0
    for pod, path, n in files:
        seqs = []
        with open(path) as f:
            for line in f:
                m = SEQ_RE.match(line)
                if not m or m.group(2) != pod:
                    bad.append(f"{path}: unexpected line {line[:80]!r}")
                    break
                seqs.append(int(m.group(1)))
        total += len(seqs)
        if seqs != list(range(1, n + 1)):
            bad.append(f"{path}: {len(seqs)} lines, expected seq 1..{n}")
    return {"lines": total, "ok": not bad, "problems": bad[:5]}


def problems(results):
    """What says the set-up itself is broken, as opposed to a figure worth reporting: a failed
    request when no agent is upgraded, a log file not holding exactly what its app wrote,
    an agent that died under load or did not exit 0, an app that did not exit 0."""
    out = []
    for r in results:
        where = f"{LAYOUT_NAMES[r['layout']]} N={r['n']}" + (" upgrade" if r.get("lifecycle") else "")
        q = r["requests"]
        if q["failed"] and not r.get("lifecycle"):
            out.append(f"{where}: {q['failed']} of {q['sent']} requests failed (errors {q['conn_errors']}, "
                       f"timeouts {q['timeouts']}, bad status {q['bad_status']}, misrouted {q['misrouted']}, "
                       f"dropped {q['dropped']})")
        if not r["logs"]["files"]["ok"]:
            out.append(f"{where}: log files: {'; '.join(r['logs']['files']['problems'])}")
        ag = r["agents"]
        if ag["alive_during_load"] != ag["processes"]:
            out.append(f"{where}: {ag['processes'] - ag['alive_during_load']} agents died under load")
        if any(c != 0 for c in ag["exit_codes"]):
            out.append(f"{where}: agent exit codes {ag['exit_codes']}")
        if any(c != 0 for c in r["apps"]["exit_codes"]):
            out.append(f"{where}: app exit codes {sorted(set(r['apps']['exit_codes']))}")
    return out


# ------------------------------------------------------------------ Markdown

def _mib(kib):
    return f"{kib / 1024:.1f}"


def _per_k(cpu_ms, count):
    return f"{cpu_ms / (count / 1000.0):.1f}" if count else "n/a"


def _ms(x):
    return "n/a" if x != x else f"{x:.3f}"


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _grouping(scrape, key, module_loaded):
    """A grouping counter summed over the agents' /metrics, or why there is none."""
    if not scrape:
        return "n/a"
    v = (scrape.get("grouping") or {}).get(key)
    if v is None:
        return "not exposed" if module_loaded else "n/a (module not loaded)"
    return f"{v:.0f}"


def _codes(codes):
    """Exit codes, e.g. "0 x 100" or "0 x 49, 1 x 1"; "-" for none."""
    if not codes:
        return "-"
    return ", ".join(f"{c} x {codes.count(c)}" for c in sorted(set(codes), key=str))


def _by_layout(results):
    d = {}
    for r in results:
        d.setdefault(r["layout"], []).append(r)
    return d


def markdown(all_results, meta, png_name):
    mods = meta["modules"]
    results = [r for r in all_results if not r.get("lifecycle")]
    lifecycle = [r for r in all_results if r.get("lifecycle")]
    a = meta["args"]
    lines = [f"# bench/patterns: sidecar vs node agent ({meta['name']})", ""]
    lines += [f"One machine ({meta['host']['cpus']} CPUs shared with other work, kernel {meta['host']['kernel']}). "
              f"Each pod sends {a['rate']:g} requests/s round robin to the other pods, writes "
              f"{a['log_rate']:g} CRI log lines/s and sends {a['statsd_rate']:g} statsd lines/s, for "
              f"{a['duration']:g} s per layout and N. Agent modules loaded in (b) and (c): "
              f"{', '.join(mods) if mods else 'none'}.", ""]
    if "proxy" not in mods:
        lines += ["**The proxy module was not loaded: in (b) and (c) the apps still call each other "
                  "directly, so their latency is the no-agent path and the agents' CPU is idle cost, "
                  "not the cost of carrying traffic.** Rows marked *direct* say so.", ""]
    bad = problems(all_results)
    if bad:
        lines += ["**The set-up misbehaved; figures below are suspect:**", ""] + [f"- {b}" for b in bad] + [""]
    if meta.get("stopped"):
        lines += [f"**The run stopped early: {meta['stopped']}.** The tables hold what finished.", ""]
    if meta.get("plot_error"):
        lines += [f"**No plot:** {meta['plot_error']}", ""]
    else:
        lines += [f"![memory and latency against N]({png_name})", ""]

    lines += ["## Resources", "",
              "Agent RSS/PSS/USS sampled at the end of the load (idle: right after start); USS = private "
              "pages, what stopping the agents would free; CPU is utime+stime "
              "over the load window, from /proc/<pid>/stat. With several modules loaded the agents' CPU is one "
              "total: the three per-1k columns divide that same total by the requests, log lines and statsd "
              "lines of the window (each pod sends them at the rates above), they are not separate costs. "
              "Containers: the seed's formulas, sidecar "
              "N × (app + agent), node N apps + 1 agent per node.", ""]
    rows = []
    for r in results:
        ag, ap, q = r["agents"], r["apps"], r["requests"]
        rows.append([LAYOUT_NAMES[r["layout"]], r["n"], ag["processes"], ag["threads"], r["containers"],
                     _mib(ag["idle_rss_kib"]), _mib(ag["rss_kib"]), _mib(ag["pss_kib"]), _mib(ag["uss_kib"]),
                     f"{ag['cpu_ms']:.0f}",
                     _per_k(ag["cpu_ms"], q["sent"]) if "proxy" in mods and ag["processes"] else "n/a (no proxy)",
                     _per_k(ag["cpu_ms"], r["logs"]["written"]) if "logs" in mods and ag["processes"] else "n/a (no logs)",
                     _per_k(ag["cpu_ms"], r["statsd"]["sent"]) if "metrics" in mods and ag["processes"] else "n/a (no metrics)",
                     f"{ap['cpu_ms']:.0f}", _per_k(ap["cpu_ms"], q["sent"] + q["served"]), _mib(ap["pss_kib"])])
    lines += [_table(["layout", "N", "agent procs", "agent threads", "containers", "agent RSS idle MiB",
                      "agent RSS MiB", "agent PSS MiB", "agent USS MiB", "agent CPU ms", "agent CPU ms /1k req",
                      "/1k log lines", "/1k statsd", "apps CPU ms", "apps CPU ms /1k req (sent+served)",
                      "apps PSS MiB"], rows), ""]

    lines += ["## Latency", "",
              "Per request, from the moment it was due (open loop, so queueing behind a slow connection "
              "counts), HDR-style buckets (<= 3.2 % error), all pods merged. Failed = not answered 200 by "
              "the right pod (errors, timeouts, misrouted, dropped).", ""]
    base = {r["n"]: r["requests"] for r in results if r["layout"] == "a"}
    rows = []
    for r in results:
        q = r["requests"]
        path = r["app_mode"] if r["layout"] != "a" else "direct"
        b = base.get(r["n"])
        d50 = f"{q['p50_ms'] - b['p50_ms']:+.3f}" if b and r["layout"] != "a" else ""
        d99 = f"{q['p99_ms'] - b['p99_ms']:+.3f}" if b and r["layout"] != "a" else ""
        rows.append([LAYOUT_NAMES[r["layout"]], r["n"], f"*{path}*", q["sent"], q["ok"], q["failed"],
                     _ms(q["p50_ms"]), _ms(q["p99_ms"]), _ms(q["p999_ms"]), _ms(q["max_ms"]), d50, d99])
    lines += [_table(["layout", "N", "path", "requests", "ok", "failed", "p50 ms", "p99 ms", "p999 ms",
                      "max ms", "p50 vs (a)", "p99 vs (a)"], rows), ""]

    lines += ["## Grouping", "",
              "What crosses the node on the pods' behalf. App connections: what the apps opened to their "
              "next hop (direct: a pool per destination pod; otherwise to their agent). Agent upstream "
              "connections: pooled connections open at the end of the load towards the destination "
              "services (`outrider_proxy_upstream_connections`, cluster other than the sidecar's own "
              "app; in brackets the sidecars' connections to their own app). Agent requests: "
              "`outrider_proxy_requests_total` over all agents (two per request with sidecars). "
              "Scrape: what one Prometheus scrape of every agent's /metrics costs (targets / series / "
              "bytes). Log sink: records received and TCP connections the agents opened to it (the "
              "logs module batches per worker but exports no batch counter). statsd: lines the apps "
              "sent, lines the agents counted (`outrider_metrics_statsd_lines_total`).", ""]
    rows = []
    for r in results:
        sc = r["scrape"]
        sink = r["logs"]["sink"]
        up = _grouping(sc, "upstream_connections", "proxy" in mods)
        if r["layout"] == "b" and "proxy" in mods:
            up += f" (+{_grouping(sc, 'upstream_connections_local', True)})"
        rows.append([LAYOUT_NAMES[r["layout"]], r["n"], r["requests"]["conns_opened"], up,
                     _grouping(sc, "proxy_requests", "proxy" in mods),
                     f"{sc['scrape_targets']} / {sc['series']} / {sc['bytes']}" if sc else "n/a",
                     f"{sink['received']} / {sink['connections']}"
                     if "logs" in mods and r["layout"] != "a" else "n/a (no logs)",
                     r["statsd"]["sent"],
                     _grouping(sc, "statsd_lines", "metrics" in mods) if r["layout"] != "a" else "n/a"])
    lines += [_table(["layout", "N", "app connections opened", "agent upstream connections",
                      "agent requests", "scrape: targets / series / bytes", "log sink: records / connections",
                      "statsd sent", "statsd counted by agents"], rows), ""]

    lines += ["## Logs", "",
              "Every pod's 0.log is checked line by line (seq 1..n of its own pod, in order) so the sink's "
              "loss and duplication counts have an exact baseline.", ""]
    rows = []
    for r in results:
        lg = r["logs"]
        shipped = r["layout"] != "a" and "logs" in mods
        rows.append([LAYOUT_NAMES[r["layout"]], r["n"], lg["written"],
                     "ok" if lg["files"]["ok"] else "BAD: " + "; ".join(lg["files"]["problems"]),
                     lg["sink"]["received"] if shipped else "n/a (not shipped)",
                     lg["sink"]["lost"] if shipped else "n/a", lg["sink"]["duplicated"] if shipped else "n/a"])
    lines += [_table(["layout", "N", "lines written", "files check", "received at sink", "lost", "duplicated"],
                     rows), ""]

    lines += ["## Lifecycle", "",
              "Hot upgrade (SIGUSR2) under the same load, a quarter into it: every sidecar in turn, or the "
              "one node agent. Serving again = from the signal until the state file names the new process "
              "(it announces itself once every listener is adopted and every module started); old exited = "
              "until the old process finished draining and exited (its exit code must be 0); whole rollout = the "
              "agents one after the other, each once its predecessor's old process exited. Failed requests "
              "and log loss count over the whole run."
              + ("" if "proxy" in mods else " **Without the proxy module the requests do not cross the agents, "
                 "so 0 failed requests says nothing about the upgrade yet.**")
              + ("" if "logs" in mods else " Lost/duplicated log lines need the logs module: "
                 f"{NOT_YET}."), ""]
    rows = []
    for r in lifecycle:
        ups = r["upgrades"] or []
        serving = sorted(u["serving_ms"] for u in ups)
        olds = [u["old_exited_ms"] for u in ups]
        shipped = "logs" in mods
        sink = r["logs"]["sink"]
        rows.append([LAYOUT_NAMES[r["layout"]], r["n"], len(ups),
                     f"{serving[len(serving) // 2]:.0f} / {serving[-1]:.0f}" if serving else "-",
                     f"{max(olds):.0f}" if olds else "-", f"{sum(olds):.0f}" if olds else "-",
                     ",".join(sorted(set(str(u["old_exit"]) for u in ups))) or "-",
                     f"{r['requests']['failed']} of {r['requests']['sent']}" + ("" if "proxy" in mods else " (*direct*)"),
                     sink["lost"] if shipped else NOT_YET, sink["duplicated"] if shipped else NOT_YET,
                     "ok" if r["logs"]["files"]["ok"] else "BAD"])
    if not rows:
        rows = [["-", "-", "-", "-", "-", "-", "-", "-", NOT_YET, NOT_YET, "-"]]
    lines += [_table(["layout", "N", "agents upgraded", "serving again ms (median / max)", "old exited ms (max)", "whole rollout ms",
                      "old exit codes", "failed requests", "lost log lines", "duplicated log lines",
                      "log files check"], rows), ""]

    lines += ["## Checks", ""]
    rows = []
    for r in all_results:
        ag = r["agents"]
        rows.append([LAYOUT_NAMES[r["layout"]] + (" upgrade" if r.get("lifecycle") else ""), r["n"],
                     f"{ag['alive_during_load']}/{ag['processes']}", _codes(ag["exit_codes"]),
                     ag["error_lines"], _codes(r["apps"]["exit_codes"]),
                     f"{ag['ready_s']:.2f}" if ag["ready_s"] is not None else "-", f"{r['wall_s']:.1f}",
                     f"{r['loadavg_before']:.1f}" if "loadavg_before" in r else "-"])
    lines += [_table(["layout", "N", "agents alive under load", "agent exit codes", "agent error lines",
                      "app exit codes", "agents ready s", "load window s",
                      "machine load avg before"], rows), ""]
    lines += [f"Command: `bench/patterns/run {meta['argv']}`; total {meta['elapsed_s']:.0f} s; load average at "
              f"the end {' '.join(meta['host']['loadavg_end'])}. Raw figures: {meta['name']}.json.", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ plot

def plot(results, path_png, data_dir):
    """Two panels against N: the agents' PSS and summed RSS (MiB), and p50/p99 latency (ms)
    per layout. The apps' memory is the same in every layout and stays in the tables."""
    by = _by_layout([r for r in results if not r.get("lifecycle")])
    dat = os.path.join(data_dir, os.path.basename(path_png) + ".dat")
    present = [l for l in "abc" if l in by]
    with open(dat, "w") as f:
        for layout in present:          # gnuplot's "index k" is the k-th block written here
            f.write(f"# layout {layout}: N agent_pss_mib agent_rss_mib p50_ms p99_ms\n")
            for r in by.get(layout, []):
                q = r["requests"]
                f.write(f"{r['n']} {r['agents']['pss_kib'] / 1024:.3f} {r['agents']['rss_kib'] / 1024:.3f} "
                        f"{q['p50_ms']:.4f} {q['p99_ms']:.4f}\n")
            f.write("\n\n")
    title = {"a": "no agent", "b": "sidecar", "c": "node agent"}
    color = {"a": "#555555", "b": "#d62728", "c": "#1f77b4"}
    mem = ", ".join(f"'{dat}' index {i} using 1:2 with linespoints lw 2 pt 7 lc rgb '{color[l]}' "
                    f"title '{title[l]}: agents PSS', '{dat}' index {i} using 1:3 with linespoints dt 2 pt 5 "
                    f"lc rgb '{color[l]}' title '{title[l]}: agents RSS (sum)'"
                    for i, l in enumerate(present) if l != "a")
    lat = ", ".join(f"'{dat}' index {i} using 1:4 with linespoints lw 2 pt 7 lc rgb '{color[l]}' "
                    f"title '{title[l]} p50', '{dat}' index {i} using 1:5 with linespoints dt 2 pt 5 "
                    f"lc rgb '{color[l]}' title '{title[l]} p99'" for i, l in enumerate(present))
    xs = sorted({r["n"] for rs in by.values() for r in rs})
    xrange = f"set xrange [{max(0, xs[0] - 1)}:{xs[-1] + 1}]" if xs else ""
    if not mem:                         # layout a alone: no agent to draw
        mem = "0 title 'no agent: 0' lc rgb '#555555'"
    script = f"""
set terminal pngcairo size 1200,520 font 'sans,10'
set output '{path_png}'
set multiplot layout 1,2
set key top left
set grid
set xlabel 'pods on the node (N)'
{xrange}
set ylabel 'MiB, all agents of the node'
set title 'Agent memory at the end of the load'
set yrange [0:*]
plot {mem}
set ylabel 'latency, ms'
set title 'Request latency (open loop, all pods)'
set logscale y
set yrange [*:*]
plot {lat}
unset multiplot
"""
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"gnuplot failed: {r.stderr}")
    os.unlink(dat)


def write(out_dir, name, results, meta, argv=None):
    os.makedirs(out_dir, exist_ok=True)
    meta = {**meta, "name": name, "argv": argv if argv is not None else " ".join(sys.argv[1:])}
    png = os.path.join(out_dir, name + ".png")
    plot_error = None
    try:
        plot(results, png, out_dir)
    except RuntimeError as e:           # the tables still matter: write them, say what is missing
        plot_error = str(e)
    md = os.path.join(out_dir, name + ".md")
    with open(md, "w") as f:
        f.write(markdown(results, {**meta, "plot_error": plot_error}, name + ".png"))
        notes = os.path.join(out_dir, name + ".notes.md")     # hand-written findings, kept on --report-only
        if os.path.exists(notes):
            with open(notes) as n:
                f.write("\n" + n.read())
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
    return md
