"""The Job Lens loop: every ``interval`` seconds one sample of the job into its recorder.

A sample is cumulative figures (CPU seconds, I/O bytes) and levels (memory, processes, GPU);
CPU is also given as percent of one core over the last interval, the figure the charts and
the efficiency line use (100 = one core busy). The sampler keeps running totals (CPU max, RSS
peak, averages) so the end line is exact even after the samples file was thinned.

It is meant to cost nothing noticeable: a handful of small /proc or cgroup reads per interval,
standard library only (≈ 10 MB RSS for the launcher process, a thread inside ``ink-session``).
"""

from __future__ import annotations

import os
import threading
import time

from . import DEFAULT_INTERVAL, DEFAULT_MAX_BYTES
from .cgroup import Cgroup, job_cgroup
from .gpu import open_gpus
from .proctree import ProcTree
from .recorder import Recorder


def check_interval(value: float) -> float:
    """The one rule for a sampling interval setting: 0 (off) or 0.05 to 3600 seconds."""
    if value != 0 and not 0.05 <= value <= 3600:
        raise ValueError("lens_interval: 0 (off) or 0.05 to 3600 seconds")
    return value


def settings_from_env(env=os.environ) -> tuple[float, int]:
    """(interval, max_bytes) from INK_LENS_INTERVAL and INK_LENS_MAX_BYTES (bad values: defaults)."""
    try:
        interval = float(env.get("INK_LENS_INTERVAL", DEFAULT_INTERVAL))
        interval = interval if 0.05 <= interval <= 3600 else DEFAULT_INTERVAL
    except ValueError:
        interval = DEFAULT_INTERVAL
    try:
        max_bytes = int(env.get("INK_LENS_MAX_BYTES", DEFAULT_MAX_BYTES))
    except ValueError:
        max_bytes = DEFAULT_MAX_BYTES
    return interval, max_bytes


def enabled(env=os.environ) -> bool:
    """False when INK_LENS_INTERVAL is 0 (the site turned Job Lens off)."""
    try:
        return float(env.get("INK_LENS_INTERVAL", DEFAULT_INTERVAL)) != 0
    except ValueError:
        return True


def allocated_cpus(env=os.environ) -> int | None:
    """Cores the scheduler gave the job, as the job's environment says."""
    for key in ("INK_LENS_CPUS", "SLURM_CPUS_ON_NODE", "SLURM_CPUS_PER_TASK", "_CONDOR_NPROCS",
                "OMP_NUM_THREADS"):
        value = env.get(key, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


class Sampler:
    """Samples the job rooted at ``root`` (a pid) into ``path`` until :meth:`stop`."""

    def __init__(self, root: int, path: str, interval: float = DEFAULT_INTERVAL,
                 max_bytes: int = DEFAULT_MAX_BYTES, cpus: int | None = None, kind: str = "job",
                 cgroup_setting: str | None = None):
        self.root, self.interval = root, interval
        cgroup = job_cgroup(cgroup_setting if cgroup_setting is not None
                            else os.environ.get("INK_LENS_CGROUP", "auto"), pid=root)
        self.source = Cgroup(cgroup) if cgroup else ProcTree(root)
        self.gpus = open_gpus()
        self.recorder = Recorder(path, max_bytes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, float] | None = None  # (monotonic time, cpu seconds)
        self.totals = {"n": 0, "cpu_sum": 0.0, "cpu_max": 0.0, "rss_sum": 0, "rss_peak": 0,
                       "gpu_sum": 0.0, "gpu_n": 0, "gpu_mem_peak": 0}
        self.started = time.time()
        self.last_sample: dict | None = None
        self.recorder.write({"type": "start", "t": round(self.started, 3), "kind": kind,
                             "source": self.source.source, "interval": interval, "cpus": cpus,
                             "host": os.uname().nodename, "gpu": self.gpus is not None})

    def sample(self) -> dict:
        now = time.monotonic()
        figures = self.source.read()
        if self.gpus is not None:
            figures.update(self.gpus.read(self.source.pids()))
        if self._last is not None and now > self._last[0]:
            cpu = max(0.0, (figures["cpu_s"] - self._last[1]) / (now - self._last[0]) * 100)
        else:
            cpu = 0.0
        self._last = (now, figures["cpu_s"])
        record = {"t": round(time.time(), 3), "cpu": round(cpu, 1), **figures}
        record["cpu_s"] = round(record["cpu_s"], 3)
        self._count(record, first=self.totals["n"] == 0 and cpu == 0.0)
        self.recorder.write(record)
        self.last_sample = record
        return record

    def _count(self, r: dict, first: bool) -> None:
        t = self.totals
        t["rss_peak"] = max(t["rss_peak"], r["rss"])  # the working set (cgroup: no page cache)
        t["rss_sum"] += r["rss"]
        t["n"] += 1
        if not first:  # the first sample has no interval behind it
            t["cpu_sum"] += r["cpu"]
            t["cpu_max"] = max(t["cpu_max"], r["cpu"])
        if "gpu_util" in r:
            t["gpu_sum"] += r["gpu_util"]
            t["gpu_n"] += 1
            t["gpu_mem_peak"] = max(t["gpu_mem_peak"], r.get("gpu_mem", 0))

    def run(self) -> None:
        """Sample now and every interval until stopped (run it in a thread)."""
        while True:
            try:
                self.sample()
            except (OSError, ValueError):
                pass  # the job's directory went away, a /proc race: try again next time
            if self._stop.wait(self.interval):
                return

    def start_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="ink-joblens", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, exit_code: int | None = None, cpu_s: float | None = None,
             max_rss: int | None = None) -> None:
        """Stop sampling and write the end line (the launcher passes the reaped child's
        rusage: exact CPU seconds and the largest process's peak RSS).

        The sampling thread is joined first: a sample still being written when the file is
        closed, or a daemon thread holding the file's lock at interpreter shutdown, used to
        abort the launcher (exit 134) after the command itself had succeeded."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 2 * self.interval))
        t = self.totals
        last = self.last_sample or {}
        cpu_total = max(cpu_s or 0.0, last.get("cpu_s", 0.0))
        ended = time.time()
        samples = max(1, t["n"] - 1)
        end = {"type": "end", "t": round(ended, 3), "exit_code": exit_code,
               "duration_s": round(ended - self.started, 3), "cpu_s": round(cpu_total, 3),
               "cpu_max": round(t["cpu_max"], 1), "cpu_avg_sampled": round(t["cpu_sum"] / samples, 1),
               "rss_peak": max(t["rss_peak"], max_rss or 0),
               "rss_avg": int(t["rss_sum"] / max(1, t["n"])),
               "io_r": last.get("io_r", 0), "io_w": last.get("io_w", 0), "samples": t["n"]}
        if "mem_peak" in last:
            end["mem_peak"] = last["mem_peak"]
        if t["gpu_n"]:
            end["gpu_util_avg"] = round(t["gpu_sum"] / t["gpu_n"], 1)
            end["gpu_mem_peak"] = t["gpu_mem_peak"]
        try:
            self.recorder.write(end)
            self.recorder.close()
        except OSError:
            pass
