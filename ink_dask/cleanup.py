"""List and cancel a session's Dask workers: they are jobs of the session and end with it.

Worker jobs carry the session's job id (Slurm job name ``ink-dask-<id>``, HTCondor attribute
``InkDaskSession``), so one scheduler command finds exactly them. ``ink-session`` calls
:func:`cancel_workers` when the session's server exits (stop, culler, wall time: the scheduler
signals the session first), and the hub calls the same command as a safety net after it
cancelled a session. Standard library only; argv lists, no shell.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess

from .config import worker_job_name

_JOB_ID = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def cancel_argv(backend: str, job_id: str, user: str) -> list[str] | None:
    """The one command that cancels every worker of session ``job_id`` of ``user``."""
    if not _JOB_ID.match(job_id or ""):
        return None
    if backend == "slurm":
        return [shutil.which("scancel") or "scancel", f"--name={worker_job_name(job_id)}",
                f"--user={user}"]
    if backend == "htcondor":
        return [shutil.which("condor_rm") or "condor_rm", "-constraint",
                f'InkDaskSession == "{job_id}" && Owner == "{user}"']
    return None


def _run(argv: list[str] | None, timeout: float) -> subprocess.CompletedProcess | None:
    """The scheduler command's result; None if there is none for this backend or it failed to run."""
    if argv is None:
        return None
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def cancel_workers(backend: str, job_id: str, user: str | None = None, timeout: float = 30) -> bool:
    """Cancel the session's workers; True if the scheduler command succeeded."""
    user = user or pwd.getpwuid(os.getuid()).pw_name
    result = _run(cancel_argv(backend, job_id, user), timeout)
    return result is not None and result.returncode == 0


def list_argv(backend: str, job_id: str, user: str) -> list[str] | None:
    """The one command that lists the job ids of every worker of session ``job_id``."""
    if not _JOB_ID.match(job_id or ""):
        return None
    if backend == "slurm":
        return [shutil.which("squeue") or "squeue", "--noheader", f"--name={worker_job_name(job_id)}",
                f"--user={user}", "--format=%i"]
    if backend == "htcondor":
        return [shutil.which("condor_q") or "condor_q", "-constraint",
                f'InkDaskSession == "{job_id}" && Owner == "{user}"', "-af", "ClusterId", "ProcId"]
    return None


def session_workers(backend: str, job_id: str, user: str | None = None,
                    timeout: float = 30) -> set[str] | None:
    """Job ids of the session's worker jobs the scheduler knows (pending or running, of every
    cluster and kernel of the session); None if the scheduler could not be asked."""
    user = user or pwd.getpwuid(os.getuid()).pw_name
    result = _run(list_argv(backend, job_id, user), timeout)
    if result is None or result.returncode != 0:
        return None
    return {".".join(line.split()) for line in result.stdout.splitlines() if line.strip()}
