"""The simulated Kubernetes node: N pods as network namespaces on one bridge.

Every name starts with a prefix holding the runner's PID (otrp<PID>), so a run only ever
deletes what it created, and a later run can sweep what a killed (SIGKILL) run left behind
by checking that its PID is gone. Addresses come from 10.254.0.0/16 and exist only on the
bridge and inside the pods; the pods get no default route, so nothing they send can leave
the machine.
"""
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile

SUBNET = ipaddress.ip_network("10.254.0.0/16")
NODE_IP = "10.254.0.1"          # the bridge: what pods see as status.hostIP
PREFIX_RE = re.compile(r"^otrp(\d+)")


def ip(*args, input=None, check=True):
    r = subprocess.run(["ip", *args], input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        cmd = " ".join(args) if input is None else f"{' '.join(args)} <<{input.splitlines()[0]}...>>"
        raise RuntimeError(f"ip {cmd}: {r.stderr.strip()}")
    return r.stdout


def pod_ip(i):
    """Pod i (1-based) gets 10.254.<1 + i // 250>.<1 + i % 250>: never the node's 10.254.0.x."""
    return f"10.254.{1 + i // 250}.{1 + i % 250}"


def check_subnet_free():
    """Refuses to run if this machine already routes anything inside 10.254.0.0/16."""
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        dest = line.split()[0]
        if dest in ("default", "local", "broadcast", "unreachable", "blackhole", "prohibit", "throw"):
            dest = line.split()[1] if dest != "default" else "0.0.0.0/0"
        try:
            net = ipaddress.ip_network(dest, strict=False)
        except ValueError:
            continue
        if net.prefixlen > 0 and net.overlaps(SUBNET):
            raise RuntimeError(f"10.254.0.0/16 is already in use on this machine (route: {line.strip()}); "
                               "the bench needs it for itself")


def _dead(m):
    return m and not os.path.exists(f"/proc/{m.group(1)}")


def sweep_stale():
    """Deletes what runs killed with SIGKILL left: processes whose command line names an
    otrp<PID>- temp dir, namespaces and links named otrp<PID>..., temp dirs, for PIDs that
    no longer exist."""
    swept = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                m = re.search(rb"/otrp(\d+)-", f.read())
        except OSError:
            continue
        if m and not os.path.exists(f"/proc/{m.group(1).decode()}"):
            try:
                os.kill(int(d), signal.SIGKILL)
                swept.append(f"process {d}")
            except ProcessLookupError:
                pass
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if _dead(PREFIX_RE.match(name)):
            ip("netns", "del", name, check=False)
            swept.append(name)
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if _dead(PREFIX_RE.match(name)):
            ip("link", "del", name, check=False)
            swept.append(name)
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        if os.path.isdir(os.path.join(tmp, name)) and _dead(PREFIX_RE.match(name)):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)
            swept.append(os.path.join(tmp, name))
    return swept


class Pod:
    def __init__(self, prefix, i):
        self.index = i
        self.netns = f"{prefix}-p{i}"
        self.veth_host = f"{prefix}v{i}"
        self.veth_pod = f"{prefix}c{i}"
        self.ip = pod_ip(i)
        self.namespace = "bench"
        self.name = f"app-{i}"
        self.uid = f"{prefix}-uid-{i:04d}"
        self.service = f"{self.name}.{self.namespace}:8080"   # what callers ask for
        self.mac = f"02:fe:00:00:{i >> 8:02x}:{i & 255:02x}"     # only has to be unique on our bridge
        self.port = 8080


class Node:
    """Creates the bridge and pods on enter; deletes them (idempotently) on close()."""

    def __init__(self, n, prefix=None):
        if n < 1 or n > 500:
            raise ValueError(f"N={n}: between 1 and 500 pods")
        self.prefix = prefix or f"otrp{os.getpid()}"
        self.bridge = f"{self.prefix}b"
        for name in (self.bridge, f"{self.prefix}v{n}"):
            if len(name) > 15:
                raise RuntimeError(f"interface name {name} is longer than 15 characters")
        self.pods = [Pod(self.prefix, i) for i in range(1, n + 1)]
        self.ip = NODE_IP
        self.mac = "02:fe:00:00:00:00"
        self.created = False

    def create(self):
        """Bridge, pods, addresses, and permanent neighbour entries for every address on the
        bridge: the kernel's ARP table is shared by all namespaces and its garbage-collection
        limit (gc_thresh3, 1024 by default) would overflow at N*(N-1) dynamic entries, dropping
        packets; permanent entries are exempt from that limit (Linux >= 5.0)."""
        self.created = True
        lines = [f"link add {self.bridge} address {self.mac} type bridge",
                 f"addr add {NODE_IP}/{SUBNET.prefixlen} dev {self.bridge}",
                 f"link set {self.bridge} up"]
        for p in self.pods:
            lines += [f"netns add {p.netns}",
                      f"link add {p.veth_host} type veth peer name {p.veth_pod} netns {p.netns}",
                      f"link set {p.veth_host} master {self.bridge} up",
                      f"neigh replace {p.ip} lladdr {p.mac} dev {self.bridge} nud permanent"]
        ip("-batch", "-", input="\n".join(lines) + "\n")
        for p in self.pods:
            neighbours = [f"neigh replace {self.ip} lladdr {self.mac} dev eth0 nud permanent"]
            neighbours += [f"neigh replace {o.ip} lladdr {o.mac} dev eth0 nud permanent"
                           for o in self.pods if o is not p]
            ip("-n", p.netns, "-batch", "-", input="\n".join([
                "link set lo up",
                f"link set {p.veth_pod} address {p.mac}",
                f"link set {p.veth_pod} name eth0",
                f"addr add {p.ip}/{SUBNET.prefixlen} dev eth0",
                "link set eth0 up"] + neighbours) + "\n")
        self.check_isolated()

    def check_isolated(self):
        """Every pod routes only the bench subnet: no default route, nothing else."""
        for p in self.pods:
            for line in ip("-n", p.netns, "-4", "route", "show").splitlines():
                dest = line.split()[0]
                if dest == "default" or ipaddress.ip_network(dest, strict=False) != SUBNET:
                    raise RuntimeError(f"pod {p.netns} has an unexpected route: {line}")

    def close(self):
        if not self.created:
            return
        for p in self.pods:
            ip("netns", "del", p.netns, check=False)     # takes its veth pair with it
        ip("link", "del", self.bridge, check=False)
        self.created = False

    def leftovers(self):
        ns = [l.split()[0] for l in ip("netns", "list").splitlines() if l.startswith(self.prefix)]
        links = [l.split(":")[1].strip().split("@")[0] for l in ip("-o", "link", "show").splitlines()
                 if l.split(":")[1].strip().startswith(self.prefix)]
        return ns + links
