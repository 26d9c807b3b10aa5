"""``python -m ink_proxy_ext.ssh_supervisor SSHD ARGS...``: one SSH connection's sshd and what it leaves.

sshd runs each login's commands in a session of their own, and a command that outlives its
connection (``nohup make &``, a daemonising tmux, VS Code Remote-SSH's server) is re-parented to
init: out of the batch job's process tree, where the scheduler no longer finds it when the session
ends (Slurm's ``proctrack/linuxproc``, the local backend's process group). This supervisor is a
*child subreaper* (``PR_SET_CHILD_SUBREAPER``): such processes become its children instead, so they
stay in the job, live on after the connection as on any login node, and end with the session:
SIGTERM (the session stopping, or the scheduler) reaches every one of them, then SIGKILL after
five seconds. It exits when sshd and everything sshd left have ended.

It gives its copies of the SSH stream (stdin/stdout) away at once, so the stream ends exactly when
sshd ends. Standard library only; Linux only (prctl).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 5


def descendants(root: int) -> list[int]:
    """Processes below ``root`` (a subreaper: orphans of its tree are its children)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        found += sorted(frontier)
    return found


def signal_all(signum: int) -> None:
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m ink_proxy_ext.ssh_supervisor SSHD ARGS...", file=sys.stderr)
        return 2
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"ssh_supervisor: prctl failed (errno {ctypes.get_errno()})", file=sys.stderr)
    sshd = subprocess.Popen(argv)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)

    def on_term(_signum, _frame):
        signal_all(signal.SIGTERM)
        signal.signal(signal.SIGALRM, lambda *_: signal_all(signal.SIGKILL))
        signal.alarm(GRACE_SECONDS)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_term)
    code = None
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break  # sshd and everything it left have ended
        except InterruptedError:
            continue
        if pid == sshd.pid:
            code = os.waitstatus_to_exitcode(status)
    return 0 if code is None else max(code, 0)


if __name__ == "__main__":
    sys.exit(main())
