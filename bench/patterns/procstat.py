"""Resource figures of a set of processes, read from /proc.

CPU is utime+stime (fields 14 and 15 of /proc/<pid>/stat, in clock ticks) sampled before and
after the measured interval; memory is VmRSS from /proc/<pid>/status and Pss from
/proc/<pid>/smaps_rollup (PSS divides shared pages between their users, so N sidecars of
the same binary are not counted N times for the same text pages).
"""
import os

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        # the command name (field 2) may hold spaces: split after its closing parenthesis
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])      # utime, stime (fields 14, 15 overall)


def cpu_ms(pids):
    """Total CPU milliseconds used so far by pids (a process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            total += cpu_ticks(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total * 1000.0 / TICK


def _kib(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def memory_kib(pids):
    """Totals in KiB over pids: rss, pss, uss (private pages: what stopping them would free),
    and the thread count."""
    m = {"rss": 0, "pss": 0, "uss": 0, "threads": 0}
    for pid in pids:
        try:
            m["rss"] += _kib(f"/proc/{pid}/status", "VmRSS:")
            m["threads"] += _kib(f"/proc/{pid}/status", "Threads:")
            m["pss"] += _kib(f"/proc/{pid}/smaps_rollup", "Pss:")
            m["uss"] += (_kib(f"/proc/{pid}/smaps_rollup", "Private_Clean:")
                         + _kib(f"/proc/{pid}/smaps_rollup", "Private_Dirty:"))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return m


def alive(pids):
    n = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            n += state != "Z"
        except FileNotFoundError:
            pass
    return n
