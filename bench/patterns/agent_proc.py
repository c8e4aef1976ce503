"""One running outrider agent: started with --state-file, ready when the file appears,
hot-upgraded with SIGUSR2, stopped with SIGTERM.

After a hot upgrade the serving process is no longer the runner's child but the old
agent's; the runner is a child subreaper (PR_SET_CHILD_SUBREAPER) so that process is
reparented to it when the old one exits, and can be stopped and reaped by its PID.
"""
import json
import os
import re
import signal
import subprocess
import time


class Agent:
    def __init__(self, procs, cmd, env, state_file, log_file, netns=None, name=""):
        self.state_file, self.log_file, self.netns, self.name = state_file, log_file, netns, name
        self.popen = procs.start(cmd, log_file, env)
        self.procs = procs
        self.pid = self.popen.pid
        self.state = None
        self.exit_codes = []        # of every process that served as this agent

    def read_state(self):
        try:
            with open(self.state_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def ready(self):
        st = self.read_state()
        if st and st.get("pid") == self.pid:
            self.state = st
            return True
        return False

    def exited(self):
        return self.popen is not None and self.popen.poll() is not None

    def admin(self):
        return self.state["listeners"]["admin"]

    def upgrade(self, timeout):
        """SIGUSR2, then waits until the state file names a new serving process and the old
        one has exited. Returns (ms until the new process announced itself ready, ms until the
        old one exited, its exit code), or raises RuntimeError."""
        old = self.popen
        t0 = time.monotonic()
        old.send_signal(signal.SIGUSR2)
        new_ms = None
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            st = self.read_state()
            if new_ms is None and st and st.get("pid") not in (None, old.pid):
                new_ms = (time.monotonic() - t0) * 1000
                self.state, self.pid = st, st["pid"]
                self.procs.adopt(self.pid)
            if new_ms is not None and old.poll() is not None:
                self.procs.forget(old)
                self.exit_codes.append(old.returncode)
                self.popen = None
                return new_ms, (time.monotonic() - t0) * 1000, old.returncode
            if old.poll() is not None and new_ms is None:
                st = self.read_state()  # the new process may have announced itself just before
                if st and st.get("pid") not in (None, old.pid):
                    continue
                raise RuntimeError(f"agent {self.name}: exited ({old.returncode}) during an upgrade "
                                   "before a new process served")
            time.sleep(0.002)
        raise RuntimeError(f"agent {self.name}: upgrade not done within {timeout:.0f} s")

    def stop(self, grace=20.0):
        if self.popen is not None:
            self.exit_codes += self.procs.stop([self.popen], grace)
        else:
            self.exit_codes.append(self.procs.stop_pid(self.pid, grace))
        return self.exit_codes


def scrape(agent):
    """The agent's /metrics body, as a Prometheus would scrape it: the metrics module's endpoint
    (registry + statsd + scraped apps) when it is loaded, else the admin endpoint (curl inside
    the pod's namespace for a sidecar)."""
    listeners = agent.state["listeners"]
    url = f"http://{listeners.get('metrics.http') or agent.admin()}/metrics"
    cmd = (["ip", "netns", "exec", agent.netns] if agent.netns else []) + ["curl", "-s", "-m", "5", url]
    return subprocess.run(cmd, capture_output=True).stdout


def _labels(line):
    """{label: value} of one exposition sample line (values without escapes in this bench)."""
    if "{" not in line:
        return {}
    inner = line.split("{", 1)[1].rsplit("}", 1)[0]
    out = {}
    for part in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', inner):
        out[part[0]] = part[1]
    return out


def _matches(labels, want):
    for k, v in want.items():
        if v.startswith("!"):
            if labels.get(k) == v[1:]:
                return False
        elif labels.get(k) != v:
            return False
    return True


def metric_sums(bodies, names):
    """{key: sum of every sample of metric names[key] over the bodies, or None if absent}.
    names[key] is a metric name or (name, {label: value or "!value"})."""
    out = {k: None for k in names}
    specs = {k: (v, {}) if isinstance(v, str) else (v[0], v[1]) for k, v in names.items()}
    for body in bodies:
        for line in body.decode(errors="replace").splitlines():
            if not line or line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            for k, (want, want_labels) in specs.items():
                if name != want:
                    continue
                if out[k] is None:
                    out[k] = 0
                if want_labels and not _matches(_labels(line), want_labels):
                    continue
                try:
                    value = line.rsplit("}", 1)[1] if "}" in line else line.split(None, 1)[1]
                    out[k] += float(value.split()[0])
                except (IndexError, ValueError):
                    pass
    return out
