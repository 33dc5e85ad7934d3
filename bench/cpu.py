"""CPU seconds of process trees, from /proc/<pid>/stat, for the capacity model.

A tree's total is every live process's own user+system time plus the
cutime+cstime that each has collected from children it already reaped
(PostgreSQL's backends, gunicorn's replaced workers): so a process that
exits between two samples is still counted, through its parent."""

import os
from pathlib import Path

from .stack import children

TICKS = os.sysconf("SC_CLK_TCK")


def _times(pid):
    """(own, reaped children) CPU seconds of one process; (0, 0) if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    # After the ")": state is field 3 of stat(5), so utime (14) is fields[11].
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def tree_seconds(root_pids):
    """CPU seconds used so far by these processes and all their descendants."""
    total = 0.0
    for root in root_pids:
        for pid in [root] + children(root):
            own, reaped = _times(pid)
            total += own + reaped
    return total


def postmaster_pid(datadir):
    """PostgreSQL's postmaster (its pid changes when the outage restarts it)."""
    return int((Path(datadir) / "postmaster.pid").read_text().split("\n", 1)[0])


def redis_seconds(conn):
    """redis-server's own CPU seconds, as it reports them."""
    cpu = conn.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def redis_commands(conn):
    """Calls per command so far, without the benchmark's own INFO calls."""
    return {k[len("cmdstat_"):]: v["calls"] for k, v in conn.info("commandstats").items()
            if k != "cmdstat_info"}


class Meter:
    """CPU and Redis counters between start() and stop(), per submission."""

    def __init__(self, stack):
        self.stack = stack

    def sample(self, web=False, workers=False):
        s = self.stack
        out = {"redis_s": redis_seconds(s.redis), "commands": redis_commands(s.redis),
               "postgres_s": tree_seconds([postmaster_pid(s.pg.datadir)])}
        if web:
            out["web_s"] = tree_seconds([s.web.proc.pid])
        if workers:
            out["worker_s"] = tree_seconds([w.proc.pid for w in s.workers])
        return out

    @staticmethod
    def per_submission(before, after, n):
        """µs of CPU per submission for each sampled process, and Redis commands per submission."""
        n = max(n, 1)
        out = {f"{k[:-2]}_cpu_us": 1e6 * (after[k] - before[k]) / n for k in before if k.endswith("_s")}
        calls = {cmd: after["commands"].get(cmd, 0) - before["commands"].get(cmd, 0)
                 for cmd in after["commands"]}
        out["redis_commands"] = sum(calls.values()) / n
        out["redis_commands_by_name"] = {c: v / n for c, v in sorted(calls.items()) if v}
        return out


def machine_seconds():
    """(busy, all) CPU seconds of every core since boot, from /proc/stat's first line."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return (total - idle - iowait) / TICKS, total / TICKS


def group_seconds(stack):
    """CPU seconds so far of each process group of the front: nginx, gunicorn,
    the workers, Redis and PostgreSQL."""
    s = stack
    return {"nginx": tree_seconds([s.proxy.proc.pid]), "gunicorn": tree_seconds([s.web.proc.pid]),
            "worker": tree_seconds([w.proc.pid for w in s.workers]), "redis": redis_seconds(s.redis),
            "postgres": tree_seconds([postmaster_pid(s.pg.datadir)])}
