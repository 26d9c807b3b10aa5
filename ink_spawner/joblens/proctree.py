"""Figures of one process tree, read from ``/proc`` (as the tree's own user; no root).

Used where the job has no cgroup of its own (Slurm with ``proctrack/linuxproc``, local jobs).
The tree is walked from its root through ``/proc/PID/task/TID/children`` — a few files per
process, never a scan of every process on the node, which is what keeps a sample cheap.

CPU time is ``utime + stime + cutime + cstime`` summed over the living tree: a child that ends
and is reaped inside the tree moves into its parent's ``cutime``, so the total never drops.
I/O (``/proc/PID/io``) has no such inheritance: the last figures of processes that left the
tree are kept and added.
"""

from __future__ import annotations

import os

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("ascii", "replace")
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (of all its threads)."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        text = _read(f"/proc/{pid}/task/{tid}/children")
        if text:
            found.extend(int(c) for c in text.split())
    return found


def tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    pids, todo, seen = [], [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        if not os.path.exists(f"/proc/{pid}"):
            continue
        pids.append(pid)
        todo.extend(children(pid))
    return pids


def cpu_seconds(pid: int) -> float | None:
    """utime + stime + cutime + cstime of one process, in seconds."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "(comm)": the name may hold spaces
    try:
        return sum(int(v) for v in fields[11:15]) / _TICK
    except (ValueError, IndexError):
        return None


def rss_bytes(pid: int) -> int:
    text = _read(f"/proc/{pid}/statm")
    try:
        return int(text.split()[1]) * _PAGE if text else 0
    except (ValueError, IndexError):
        return 0


def io_bytes(pid: int) -> tuple[int, int] | None:
    """(read_bytes, write_bytes) the process caused at the block layer, or None if unreadable."""
    text = _read(f"/proc/{pid}/io")
    if not text:
        return None
    values = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        values[key] = value
    try:
        return int(values["read_bytes"]), int(values["write_bytes"])
    except (KeyError, ValueError):
        return None


def net_namespace_bytes(pid: int) -> tuple[int, int] | None:
    """Received and sent bytes of the process's network namespace, except loopback."""
    text = _read(f"/proc/{pid}/net/dev")
    if not text:
        return None
    rx = tx = 0
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        parts = rest.split()
        if len(parts) >= 9:
            rx += int(parts[0])
            tx += int(parts[8])
    return rx, tx


def own_network_namespace(pid: int) -> bool:
    """True if the job has a network namespace of its own (then its counters are the job's);
    False if it shares the node's, or if that cannot be told."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/1/ns/net")
    except OSError:
        return False


class ProcTree:
    """Cumulative figures of the tree under ``root``; one :meth:`read` per sample."""

    source = "proc"

    def __init__(self, root: int):
        self.root = root
        self._io_last: dict[int, tuple[int, int]] = {}
        self._io_gone = [0, 0]
        self._cpu_floor = 0.0
        self.net = own_network_namespace(root)

    def read(self) -> dict:
        pids = tree(self.root)
        cpu = rss = 0.0
        io_now: dict[int, tuple[int, int]] = {}
        for pid in pids:
            c = cpu_seconds(pid)
            if c is None:
                continue
            cpu += c
            rss += rss_bytes(pid)
            io = io_bytes(pid)
            if io is not None:
                io_now[pid] = io
        for pid, (r, w) in self._io_last.items():
            if pid not in io_now:  # left the tree: keep what it did
                self._io_gone[0] += r
                self._io_gone[1] += w
        self._io_last = io_now
        # a process reparented away takes its CPU time with it: never report less than before
        self._cpu_floor = max(self._cpu_floor, cpu)
        figures = {
            "cpu_s": self._cpu_floor,
            "rss": int(rss),
            "io_r": self._io_gone[0] + sum(r for r, _ in io_now.values()),
            "io_w": self._io_gone[1] + sum(w for _, w in io_now.values()),
            "procs": len(pids),
        }
        if self.net and pids:
            net = net_namespace_bytes(self.root)
            if net:
                figures["net_rx"], figures["net_tx"] = net
        return figures

    def pids(self) -> list[int]:
        return tree(self.root)
