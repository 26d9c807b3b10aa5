"""Job Lens overhead: the sampler's own CPU time and RSS while it samples a busy process tree.

Starts a busy tree (two CPU burners and a sleeping parent, a few children), runs the real
launcher (``python -m ink_spawner.joblens``) in front of it at the site interval (5 s) for
``--seconds`` (≥ 60), and reads the launcher's own utime+stime and VmHWM from /proc (its
children's time is not counted: it is the job's). Target: ≤ 0.15 % of one core, ≤ 20 MB.

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=5)
    args = parser.parse_args()
    out = os.path.join(tempfile.mkdtemp(prefix="joblens-bench-"), "metrics.jsonl")
    env = dict(os.environ, INK_LENS_INTERVAL=str(args.interval))
    launcher = subprocess.Popen([sys.executable, "-m", "ink_spawner.joblens", "--out", out, "--cpus", "2",
                                 "--", sys.executable, "-c", BUSY], env=env)
    time.sleep(1.0)  # imports done: measure the sampling itself from here
    cpu0, _ = own_figures(launcher.pid)
    t0 = time.monotonic()
    time.sleep(args.seconds)
    cpu1, hwm = own_figures(launcher.pid)
    elapsed = time.monotonic() - t0
    with open(out) as f:
        samples = sum(1 for line in f) - 1
    from ink_spawner.joblens.proctree import tree

    for pid in reversed(tree(launcher.pid)):  # the busy tree this script started, by pid
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    launcher.wait(30)
    percent = (cpu1 - cpu0) / elapsed * 100
    print(f"sampled {samples} times in {elapsed:.0f} s; launcher CPU {cpu1 - cpu0:.3f} s "
          f"(import and start-up excluded), peak RSS {hwm:.1f} MB")
    print(f"RESULT joblens cpu_percent_of_core={percent:.3f} rss_mb={hwm:.1f} interval_s={args.interval:g}")


if __name__ == "__main__":
    main()
