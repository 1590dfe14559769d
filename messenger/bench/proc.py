"""What a run costs: server CPU and memory from /proc, the generator's own CPU, the machine.

Adapted from ../shared/bench/xmpp/xmpp_load.py and ../shared/bench/floor/relay_load.py (the
team's Prosody anchor and relay floor): the same fields of the same files, read the same
way, so the figures of the three harnesses compare. With ``twistd -n`` the server PID is
the server itself, and process-wide stat includes its adbapi and hashing threads.
"""

from __future__ import annotations

import os
import resource

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    return proc_cpu_ticks_path(f"/proc/{pid}/stat")


def proc_thread_ticks(pid: int) -> dict[int, int]:
    """utime+stime per thread (task) of a process, in clock ticks; threads that ended drop out."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            ut, st = proc_cpu_ticks_path(f"/proc/{pid}/task/{tid}/stat")
        except (OSError, ValueError, IndexError):
            continue
        out[int(tid)] = ut + st
    return out


def proc_cpu_ticks_path(path: str) -> tuple[int, int]:
    """(utime, stime) from a stat file of /proc (a process or one of its tasks)."""
    with open(path, "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()  # fields after "(comm)", starting at state
    return int(fields[11]), int(fields[12])


def proc_mem_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def proc_cmdline(pid: int) -> list[str]:
    """The command line of a process (empty if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode("utf-8", "replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])      # exclude guest (already in user)
    return total - idle, total


def self_cpu_s() -> float:
    """This process's user + system CPU seconds."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to at least ``wanted`` if allowed (root may raise the hard limit
    too); return the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    for new_hard in (max(hard, wanted) if hard != resource.RLIM_INFINITY else hard, hard):
        target = wanted if new_hard == resource.RLIM_INFINITY else min(wanted, new_hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, new_hard))
            return target
        except (ValueError, OSError):
            continue
    return soft


def proc_nofile(pid: int) -> int | None:
    """The soft 'Max open files' of another process, from /proc/PID/limits."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children() -> dict[int, list[int]]:
    """Every process's children (from the ppid field of /proc/*/stat)."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
            ppid = int(data[data.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out.setdefault(ppid, []).append(int(entry))
    return out


def tree_cpu_ticks(pid: int, children: dict[int, list[int]] | None = None) -> int:
    """utime+stime of a process and all its descendants alive now (PostgreSQL's
    backends are children of the postmaster), in clock ticks."""
    children = _children() if children is None else children
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            ut, st = proc_cpu_ticks(current)
        except (OSError, ValueError, IndexError):
            continue
        total += ut + st
        todo.extend(children.get(current, ()))
    return total


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f"{f.read().strip()}:{pid}"
    except OSError:
        return str(pid)


class ServerSample:
    """One reading of the server's CPU ticks and memory (and the machine's jiffies);
    with ``also``, the CPU of more serving processes (each with its descendants), for a
    cluster: the other nodes, PostgreSQL, Redis, HAProxy."""

    __slots__ = ("pid", "ticks", "threads", "mem", "machine", "also")

    def __init__(self, pid: int, also: tuple[int, ...] = ()) -> None:
        self.pid = pid
        self.ticks = proc_cpu_ticks(pid) if pid else None
        self.threads = proc_thread_ticks(pid) if pid else {}
        self.mem = proc_mem_kib(pid) if pid else {}
        self.machine = machine_cpu()
        children = _children() if also else {}
        self.also = {other: tree_cpu_ticks(other, children) for other in also}


def server_figures(before: ServerSample, after: ServerSample, delivered: int,
                   duration_s: float) -> dict[str, float | int | None]:
    """The summarize() keys of the shared harness that come from /proc."""
    out: dict[str, float | int | None] = {}
    if before.ticks is not None and after.ticks is not None:
        ut = after.ticks[0] - before.ticks[0]
        st = after.ticks[1] - before.ticks[1]
        cpu_s = (ut + st) / CLK_TCK
        out["server_cpu_s"] = round(cpu_s, 3)
        out["server_user_s"] = round(ut / CLK_TCK, 3)
        out["server_sys_s"] = round(st / CLK_TCK, 3)
        out["server_cpu_us_per_msg"] = round(cpu_s * 1e6 / delivered, 2) if delivered else None
        out["server_cpu_util"] = round(cpu_s / duration_s, 3) if duration_s > 0 else None
        out["server_rss_kib_before"] = before.mem.get("VmRSS")
        out["server_rss_kib_after"] = after.mem.get("VmRSS")
        out["server_hwm_kib"] = after.mem.get("VmHWM")
        # The reactor (main) thread against the others (adbapi, password hashing, ...):
        # a thread that ended within the window is missing from the split, not the total.
        main = after.threads.get(after.pid, 0) - before.threads.get(before.pid, 0)
        out["server_main_thread_s"] = round(main / CLK_TCK, 3)
        out["server_other_threads_s"] = round(cpu_s - main / CLK_TCK, 3)
    if before.also and before.ticks is not None and after.ticks is not None:
        by_process = {process_name(before.pid): sum(after.ticks) - sum(before.ticks)}
        for pid, ticks in before.also.items():
            by_process[process_name(pid)] = after.also.get(pid, ticks) - ticks
        total = sum(by_process.values()) / CLK_TCK
        out["total_cpu_s"] = round(total, 3)
        out["total_cpu_us_per_msg"] = round(total * 1e6 / delivered, 2) if delivered else None
        out["cpu_us_per_msg_by_process"] = {
            name: round(ticks / CLK_TCK * 1e6 / delivered, 2) if delivered else None
            for name, ticks in by_process.items()}
    b0, t0 = before.machine
    b1, t1 = after.machine
    out["machine_busy_2cores"] = round((b1 - b0) / max(1, t1 - t0), 3)
    return out
