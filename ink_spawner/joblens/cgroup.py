"""Figures of the job's own cgroup v2 (``cpu.stat``, ``memory.current``/``peak``, ``io.stat``).

A scheduler with cgroup support puts each job in a cgroup of its own (Slurm's
``proctrack/cgroup``: ``.../job_<id>/...``; HTCondor: ``.../htcondor/...``); its counters then
cover every process of the job, even those that left the process tree. A job that shares a
cgroup with others (a login session, a container's root cgroup) is measured from ``/proc``
instead (:mod:`.proctree`): the cgroup's figures would not be the job's.
"""

from __future__ import annotations

import os
import re

CGROUP_ROOT = "/sys/fs/cgroup"
#: path components that mean "a cgroup made for this job" (Slurm, HTCondor)
_JOB_CGROUP = re.compile(r"/(job_[0-9]+|htcondor[^/]*|condor_[^/]+)(/|$)")


def cgroup_of(pid: int | str = "self") -> str | None:
    """The cgroup v2 path of a process ("0::/path"), or None without cgroup v2."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def job_cgroup(setting: str = "auto", pid: int | str = "self", root: str = CGROUP_ROOT) -> str | None:
    """The directory of the job's own cgroup, or None (then /proc is read).

    ``setting`` (``INK_LENS_CGROUP``): ``auto`` (a Slurm/HTCondor job cgroup), ``off``, or the
    cgroup directory to read."""
    if setting == "off":
        return None
    if setting not in ("", "auto"):
        return setting if os.path.isfile(os.path.join(setting, "cpu.stat")) else None
    path = cgroup_of(pid)
    if not path or path == "/" or not _JOB_CGROUP.search(path):
        return None
    directory = root + path
    return directory if os.path.isfile(os.path.join(directory, "cpu.stat")) else None


def _keyed(text: str) -> dict[str, int]:
    values = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


def _read(directory: str, name: str) -> str | None:
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read()
    except OSError:
        return None


class Cgroup:
    """Cumulative figures of one cgroup v2 directory; one :meth:`read` per sample."""

    source = "cgroup"

    def __init__(self, directory: str):
        self.directory = directory

    def read(self) -> dict:
        """One sample. ``rss`` is the working set (``memory.current`` less ``inactive_file``:
        page cache the kernel would drop first), the figure comparable with /proc's RSS and
        the one charts, averages and ``rss_peak`` use. ``mem_peak`` is ``memory.peak`` as the
        kernel keeps it: everything ever charged at once, page cache included — what the
        cgroup's memory limit is measured against, and so never mixed into ``rss_peak``
        (a job that reads a large file would otherwise show a peak it never held)."""
        d = self.directory
        cpu = _keyed(_read(d, "cpu.stat") or "")
        memory = int((_read(d, "memory.current") or "0").strip() or 0)
        stat = _keyed(_read(d, "memory.stat") or "")
        figures = {"cpu_s": cpu.get("usage_usec", 0) / 1e6,
                   "rss": max(0, memory - stat.get("inactive_file", 0))}
        peak = (_read(d, "memory.peak") or "").strip()
        if peak.isdigit():
            figures["mem_peak"] = int(peak)
        rbytes = wbytes = 0
        for line in (_read(d, "io.stat") or "").splitlines():
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                if key == "rbytes":
                    rbytes += int(value)
                elif key == "wbytes":
                    wbytes += int(value)
        figures["io_r"], figures["io_w"] = rbytes, wbytes
        figures["procs"] = len(self.pids())
        return figures

    def pids(self) -> list[int]:
        return [int(p) for p in (_read(self.directory, "cgroup.procs") or "").split()]
