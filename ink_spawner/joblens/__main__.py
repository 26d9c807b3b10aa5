"""``python -m ink_spawner.joblens --out FILE -- PROGRAM ARGS...``: run a job's command, sampled.

The launcher in front of every job-API job (inside the job's constant wrapper). It starts the
command as its child, samples the child's tree in a thread, forwards the scheduler's signals,
and exits with the child's status, so the job behaves as if it ran the command itself. It
prints nothing: the job's stdout and stderr are the command's alone. If sampling cannot start
(the file cannot be created), the command runs unsampled — a lens never fails a job.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from .sampler import Sampler, allocated_cpus, enabled, settings_from_env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ink_spawner.joblens",
                                     description="Run a command and sample its CPU, memory, I/O and GPU.")
    parser.add_argument("--out", required=True, help="the samples file (created 0600)")
    parser.add_argument("--cpus", type=int, default=None, help="cores the job was given")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    try:
        child = subprocess.Popen(command)
    except OSError as e:
        print(f"{command[0]}: {e.strerror}", file=sys.stderr)
        return 127

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
                signal.SIGCONT):
        signal.signal(sig, forward)

    sampler = None
    if enabled():
        interval, max_bytes = settings_from_env()
        try:
            sampler = Sampler(child.pid, args.out, interval, max_bytes,
                              cpus=args.cpus or allocated_cpus())
            sampler.start_thread()
        except OSError:
            sampler = None
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    code = child.returncode if child.returncode >= 0 else 128 - child.returncode
    if sampler is not None:
        sampler.stop(exit_code=code, cpu_s=usage.ru_utime + usage.ru_stime,
                     max_rss=usage.ru_maxrss * 1024)
    return code


if __name__ == "__main__":
    sys.exit(main())
