"""One contract, every backend: local (real processes), slurm (the real dev Slurm) and htcondor
(the FAKE schedd, with the test playing the startd, since no HTCondor daemons exist here)."""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import pytest

from ink_spawner.backends import BackendError, JobState
from ink_spawner.backends.htcondor import HTCondorBackend
from ink_spawner.backends.local import LocalBackend
from ink_spawner.backends.slurm import SlurmBackend
from ink_spawner.jobspec import JobSpec

from .condor_pool import FakePool

BACKENDS = ["local", "slurm", "htcondor"]


class Harness:
    """Builds a backend and plays whatever part of the scheduler is not real for it."""

    def __init__(self, kind: str):
        self.kind = kind
        self.pool = FakePool() if kind == "htcondor" else None
        if kind == "local":
            self.backend = LocalBackend()
        elif kind == "slurm":
            self.backend = SlurmBackend()
        else:
            self.backend = HTCondorBackend(submit_helper=self.pool.helper)

    def after_submit(self, job_id: str) -> None:
        if self.pool is not None:  # the negotiator matches it, the startd runs it
            self.pool.start_job(job_id, socket.gethostname())

    def after_cancel(self) -> None:
        if self.pool is not None:
            self.pool.reap_removed()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


@pytest.fixture(params=BACKENDS)
def harness(request, unix_users):
    if request.param == "slurm":
        request.getfixturevalue("dev_slurm")
    h = Harness(request.param)
    yield h
    h.close()


def sleep_spec(marker: str) -> JobSpec:
    home = pwd.getpwnam("alice").pw_dir
    return JobSpec(user="alice", name="jupyter", command=("/bin/sleep", marker),
                   env={"HOME": home}, workdir=home,
                   output_path=f"{home}/.ink/logs/contract-{marker}.log", memory_mb=100,
                   walltime_s=600, tags={"hub": "ink-contract", "user": "alice", "server": "jupyter"})


async def wait_state(backend, job_id, wanted, timeout=20):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = (await backend.query({job_id})).get(job_id)
        if status is not None and status.state is wanted:
            return status
        if status is None and wanted is JobState.DONE:
            return None  # gone from the scheduler: ended
        assert asyncio.get_running_loop().time() < deadline, f"{job_id}: {status} != {wanted}"
        await asyncio.sleep(0.2)


def processes_with_marker(marker: str) -> list[int]:
    """Live processes whose argv carries the marker (a unique sleep duration)."""
    found = []
    needle = f"\0{marker}\0".encode()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmdline = b"\0" + f.read()
                with open(f"/proc/{p}/stat") as f:
                    zombie = f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
            except OSError:
                continue
            if needle in cmdline and not zombie:
                found.append(int(p))
    return found


async def test_submit_run_as_user_cancel(harness):
    backend = harness.backend
    marker = f"300.{os.getpid()}{BACKENDS.index(harness.kind)}"  # a unique sleep duration
    await backend.make_private_dir("alice", f"{pwd.getpwnam('alice').pw_dir}/.ink/logs")
    job_id = await backend.submit(sleep_spec(marker))
    assert isinstance(job_id, str) and job_id
    harness.after_submit(job_id)
    status = await wait_state(backend, job_id, JobState.RUNNING)
    assert status.node and backend.host_for(status)
    # the job's processes run as alice
    await asyncio.sleep(0.3)
    pids = processes_with_marker(marker)
    assert pids and {os.stat(f"/proc/{p}").st_uid for p in pids} == {pwd.getpwnam("alice").pw_uid}
    # unknown ids are simply not reported (the status cache turns them into "ended")
    unknown = (await backend.query({"999999"})).get("999999")
    assert unknown is None or unknown.state is JobState.DONE
    await backend.cancel(job_id, "alice")
    harness.after_cancel()
    await wait_state(backend, job_id, JobState.DONE)
    for _ in range(50):
        if not processes_with_marker(marker):
            break
        await asyncio.sleep(0.2)
    assert not processes_with_marker(marker), "cancel must leave no process behind"
    await backend.cancel(job_id, "alice")  # cancelling an ended job is not an error


async def test_cancel_rejects_malformed_job_ids(harness):
    with pytest.raises(BackendError):
        await harness.backend.cancel("1; rm -rf /", "alice")
