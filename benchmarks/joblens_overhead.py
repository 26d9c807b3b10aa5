"""Job Lens overhead: the sampler's own CPU time and RSS while it samples a busy process tree.

Starts a busy tree (two CPU burners and a sleeping parent, a few children), runs the real
launcher (``python -m ink_spawner.joblens``) in front of it at the site interval (5 s) for
``--seconds`` (≥ 60), and reads the launcher's own utime+stime and VmHWM from /proc (its
children's time is not counted: it is the job's). At 5 s that CPU time is below /proc's clock
tick, so the cost of one sample is also measured at a 0.05 s interval and scaled to the site
interval; the RESULT is the larger of the two. Target: ≤ 0.15 % of one core, ≤ 20 MB.

    .venv/bin/python benchmarks/joblens_overhead.py [--seconds 60] [--interval 5]

LAST line: ``RESULT joblens cpu_percent_of_core=<p> rss_mb=<MB> interval_s=<s>``
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

BUSY = ("import os, time\n"
        "for _ in range(2):\n"
        "    if os.fork() == 0:\n"
        "        t = time.time()\n"
        "        while time.time() - t < 600: pass\n"
        "        os._exit(0)\n"
        "time.sleep(600)\n")


def own_figures(pid: int) -> tuple[float, float]:
    """(utime+stime seconds of the process itself, VmHWM in MB)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return cpu, hwm


def measure(interval: float, seconds: float) -> tuple[float, int, float, float]:
    """Run the launcher in front of the busy tree: (its own CPU seconds after start-up, samples
    written in that window, the window's length, its peak RSS in MB)."""
    out = os.path.join(tempfile.mkdtemp(prefix="joblens-bench-"), "metrics.jsonl")
    env = dict(os.environ, INK_LENS_INTERVAL=str(interval))
    launcher = subprocess.Popen([sys.executable, "-m", "ink_spawner.joblens", "--out", out, "--cpus", "2",
                                 "--", sys.executable, "-c", BUSY], env=env)

    def lines() -> int:
        try:
            with open(out) as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    time.sleep(1.0)  # imports done: measure the sampling itself from here
    cpu0, _ = own_figures(launcher.pid)
    n0, t0 = lines(), time.monotonic()
    time.sleep(seconds)
    cpu1, hwm = own_figures(launcher.pid)
    n1, elapsed = lines(), time.monotonic() - t0
    from ink_spawner.joblens.proctree import tree

    for pid in reversed(tree(launcher.pid)):  # the busy tree this script started, by pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    launcher.wait(30)
    return cpu1 - cpu0, n1 - n0, elapsed, hwm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--calibrate-seconds", type=float, default=20)
    args = parser.parse_args()
    cpu, samples, elapsed, hwm = measure(args.interval, args.seconds)
    direct = cpu / elapsed * 100
    print(f"at {args.interval:g} s: sampled {samples} times in {elapsed:.0f} s; launcher CPU {cpu:.3f} s "
          f"(import and start-up excluded; /proc counts in {1 / os.sysconf('SC_CLK_TCK'):.2f} s ticks), "
          f"peak RSS {hwm:.1f} MB")
    # At 5 s the launcher's CPU time is below the clock tick over a minute; the cost of one
    # sample is measured at a short interval instead and scaled to the site interval.
    cal_cpu, cal_samples, cal_elapsed, _ = measure(0.05, args.calibrate_seconds)
    per_sample = cal_cpu / max(1, cal_samples)
    scaled = per_sample / args.interval * 100
    print(f"at 0.05 s: {cal_samples} samples in {cal_elapsed:.0f} s cost {cal_cpu:.2f} s of CPU: "
          f"{per_sample * 1000:.2f} ms per sample -> {scaled:.4f} % of one core at {args.interval:g} s")
    percent = max(direct, scaled)
    print(f"RESULT joblens cpu_percent_of_core={percent:.4f} rss_mb={hwm:.1f} interval_s={args.interval:g}")


if __name__ == "__main__":
    main()
