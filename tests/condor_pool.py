"""Test helpers around the FAKE schedd (tests/fake_schedd.py): a shared queue file, and a
stand-in startd that really runs a matched job's command as its owner."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile

from . import fake_schedd
from .harness import REPO, VENV_BIN


def decode_condor_arguments(text: str) -> list[str]:
    """Parse HTCondor's new arguments syntax (the inverse of condor_arguments, per the manual)."""
    assert text.startswith('"') and text.endswith('"'), text
    body = text[1:-1].replace('""', '"')
    args, current, quoted, i, started = [], [], False, 0, False
    while i < len(body):
        ch = body[i]
        if quoted:
            if ch == "'" and body[i + 1: i + 2] == "'":
                current.append("'")
                i += 1
            elif ch == "'":
                quoted = False
            else:
                current.append(ch)
        elif ch == "'":
            quoted = started = True
        elif ch in " \t":
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
        i += 1
    if started:
        args.append("".join(current))
    return args


class FakePool:
    """A fake schedd queue file shared by the hub, the submit helper and the test.

    The test's own process gets the fake at once; a hub gets it from :meth:`hub_config`, the
    submit helper from :attr:`helper`."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ink-fake-condor-")
        os.chmod(self.dir, 0o777)  # the helper runs as the session's user
        self.state = os.path.join(self.dir, "queue.json")
        open(self.state, "w").close()
        os.chmod(self.state, 0o666)
        self.procs: dict[str, subprocess.Popen] = {}
        self._saved = {k: os.environ.get(k) for k in ("INK_FAKE_SCHEDD_STATE", "PYTHONPATH")}
        os.environ["INK_FAKE_SCHEDD_STATE"] = self.state
        os.environ["PYTHONPATH"] = str(REPO)
        fake_schedd.install(self.state)  # backends made in this process open the fake

    def hub_config(self) -> str:
        """Lines for a hub's (or a portal server's Python) config: the fake in that process."""
        return (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                f"from tests import fake_schedd; fake_schedd.install({self.state!r})\n"
                f"c.HTCondorBackend.submit_helper = {self.helper!r}\n")

    @property
    def helper(self) -> list[str]:
        """``c.HTCondorBackend.submit_helper`` for this pool: the real helper on the fake queue."""
        return [str(VENV_BIN / "python"), "-m", "tests.fake_condor_job", "--fake-state", self.state]

    def ads(self, constraint: str = "true"):
        return fake_schedd.FakeSchedd().query(constraint)

    def ad(self, job_id: str):
        cluster, proc = job_id.split(".")
        found = self.ads(f"ClusterId == {cluster} && ProcId == {proc}")
        assert found, f"no job {job_id}"
        return found[0]

    def start_job(self, job_id: str, host: str) -> subprocess.Popen:
        """Play the startd: run the job's command as its owner with the ad's environment."""
        ad = self.ad(job_id)
        argv = [ad["Cmd"], *decode_condor_arguments(ad["Arguments"])]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        for item in decode_condor_arguments(ad["Environment"]):
            key, _, value = item.partition("=")
            env[key] = value
        owner = pwd.getpwnam(ad["Owner"])
        env.update(HOME=owner.pw_dir, USER=ad["Owner"])
        out = open(ad["Out"], "ab")
        os.chown(ad["Out"], owner.pw_uid, owner.pw_gid)
        proc = subprocess.Popen(argv, env=env, cwd=ad["Iwd"], stdout=out, stderr=subprocess.STDOUT,
                                user=owner.pw_uid, group=owner.pw_gid, start_new_session=True)
        self.procs[job_id] = proc
        fake_schedd.set_running(job_id, host)
        return proc

    def reap_removed(self) -> None:
        """Play the startd on condor_rm: kill the processes of removed jobs."""
        for job_id, proc in list(self.procs.items()):
            if self.ad(job_id)["JobStatus"] == 3 and proc.poll() is None:
                os.killpg(proc.pid, 15)
                proc.wait(10)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        fake_schedd.uninstall()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.dir, ignore_errors=True)
