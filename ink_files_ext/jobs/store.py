"""The user's workflow jobs: one directory per job under ``~/.ink/jobs``.

A job submitted through the API gets ``~/.ink/jobs/<id>/`` with ``job.json`` (what was asked,
the backend's job id, and once it ended its final state), ``stdout``, ``stderr``,
``exit_code`` (written by the job's wrapper) and, for scripts, ``script``. Only jobs recorded
here are listed, so ``ls`` shows the user's INK workflow jobs and nothing else, and a job's
output and exit status stay readable after the scheduler has forgotten it (no accounting
database needed). Everything runs as the user, in the user's home.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from datetime import datetime, timezone

from ink_spawner.jobstatus import JobState, JobStatus

ID_RE = re.compile(r"^[0-9a-f]{12}$")
BACKEND_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ACTIVE = ("pending", "running")
FINAL = ("completed", "failed", "cancelled")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class JobStore:
    """Job records in one directory (``~/.ink/jobs``), created 0700."""

    def __init__(self, root: str):
        self.root = root

    def _ensure_root(self) -> None:
        os.makedirs(self.root, mode=0o700, exist_ok=True)

    def new_dir(self) -> tuple[str, str]:
        """A fresh job id and its private directory."""
        self._ensure_root()
        while True:
            job_id = secrets.token_hex(6)
            path = os.path.join(self.root, job_id)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                continue
            return job_id, path

    def path(self, job_id: str, name: str = "") -> str:
        return os.path.join(self.root, job_id, name) if name else os.path.join(self.root, job_id)

    def discard(self, job_id: str) -> None:
        shutil.rmtree(self.path(job_id), ignore_errors=True)

    def save(self, record: dict) -> None:
        """Write job.json atomically (a reader never sees half a record)."""
        target = self.path(record["id"], "job.json")
        tmp = f"{target}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, target)

    def load(self, job_id: str) -> dict | None:
        if not ID_RE.match(job_id):
            return None
        try:
            with open(self.path(job_id, "job.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def find(self, key: str) -> dict | None:
        """A job by INK id, or by the backend's job id (e.g. the Slurm job number)."""
        record = self.load(key)
        if record is not None or not BACKEND_ID_RE.match(key):
            return record
        matches = [r for r in self.all() if r.get("backend_id") == key]
        return max(matches, key=lambda r: r["submitted"]) if matches else None

    def all(self) -> list[dict]:
        """Every recorded job, newest first."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        records = [r for r in (self.load(n) for n in names if ID_RE.match(n)) if r]
        records.sort(key=lambda r: r["submitted"], reverse=True)
        return records

    def exit_code(self, job_id: str) -> int | None:
        try:
            with open(self.path(job_id, "exit_code")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def update(self, record: dict, status: JobStatus | None) -> dict:
        """Bring an active record up to date with the scheduler's status; keep a final state."""
        if record["state"] not in ACTIVE or status is None:
            return record
        if status.state is JobState.PENDING:
            record.update(state="pending", reason=status.reason, node=None, position=status.position,
                          pending_total=status.pending_total)
            return record
        if status.state is JobState.RUNNING:
            first = not record.get("started")
            record.update(state="running", reason=None, node=status.node, position=None,
                          started=record.get("started") or time.time())
            if first:  # seen running for the first time: keep when (elapsed time on the page)
                self.save(record)
            return record
        code = self.exit_code(record["id"])
        if code is None and not status.settled:
            record.update(state="running", reason=status.reason)  # ending (Slurm: completing)
            return record
        if code == 0:
            state, reason = "completed", None  # it finished before a cancel reached it
        elif record.get("cancel_requested"):
            state, reason = "cancelled", "cancelled through the API"
        elif code is not None:
            state, reason = "failed", f"exit code {code}"
        elif status.reason in ("cancelled", "timeout", "preempted"):
            state, reason = ("cancelled" if status.reason == "cancelled" else "failed"), status.reason
        else:
            state = "failed"
            reason = f"ended without an exit status ({status.reason or 'killed, timed out or lost'})"
        record.update(state=state, reason=reason, exit_code=code, ended=time.time(), position=None,
                      node=record.get("node") or status.node)
        self.save(record)
        return record


def public(record: dict) -> dict:
    """The API's view of a record."""
    return {
        "id": record["id"],
        "name": record["name"],
        "state": record["state"],
        "reason": record.get("reason"),
        "exit_code": record.get("exit_code"),
        "backend": record["backend"],
        "backend_id": record["backend_id"],
        "node": record.get("node"),
        "position": record.get("position"),
        "pending_total": record.get("pending_total"),
        "experiment": record["experiment"],
        "command": record.get("command"),
        "script": record.get("script", False),
        "cpus": record["cpus"],
        "memory_mb": record["memory_mb"],
        "gpus": record["gpus"],
        "walltime_s": record["walltime_s"],
        "image": record.get("image"),
        "workdir": record["workdir"],
        "stdout_path": record["stdout_path"],
        "stderr_path": record["stderr_path"],
        "submitted": iso(record["submitted"]),
        "started": iso(record.get("started")),
        "ended": iso(record.get("ended")),
    }
