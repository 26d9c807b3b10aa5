"""A FAKE HTCondor schedd: the one mock in this test suite, named as such.

HTCondor daemons cannot be installed on these machines (the PyPI wheel carries only the
bindings; Debian 12 has no HTCondor). This class stands in for ``htcondor2.Schedd`` with the
three calls INK makes — ``submit``, ``query``, ``act`` — and keeps job ads as ClassAd text in a
file (``$INK_FAKE_SCHEDD_STATE``), so the hub process and the submit helper (run as the user in
another process) share one queue. What stays real: ``htcondor2.Submit`` parses every submit
description INK produces, and classad2 parses and evaluates every constraint, projection and
expression. Tests play the negotiator and startd with :func:`set_running` and friends.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import time
from contextlib import contextmanager

import classad2
import htcondor2

# submit command -> job ad attribute, for the commands INK uses
_ATTRS = {
    "universe": "JobUniverseName", "executable": "Cmd", "arguments": "Arguments",
    "initialdir": "Iwd", "output": "Out", "error": "Err", "environment": "Environment",
    "getenv": "GetEnv", "should_transfer_files": "ShouldTransferFiles",
    "when_to_transfer_output": "WhenToTransferOutput", "transfer_input_files": "TransferInput",
    "request_cpus": "RequestCpus", "request_memory": "RequestMemory", "request_gpus": "RequestGPUs",
    "periodic_remove": "PeriodicRemove", "container_image": "ContainerImage",
    "accounting_group": "AcctGroup", "accounting_group_user": "AcctGroupUser",
    "concurrency_limits": "ConcurrencyLimits", "requirements": "Requirements",
}
_EXPRESSIONS = {"PeriodicRemove", "Requirements"}
_INTEGERS = {"RequestCpus", "RequestGPUs"}


_REAL_SCHEDD = htcondor2.Schedd


def install(state: str | None = None) -> None:
    """Make ``htcondor2.Schedd`` this fake in the calling process (the hub, a portal server, the
    submit helper, or the test itself): INK opens ``htcondor2.Schedd`` and is none the wiser.
    ``state`` is the queue file shared by all of them."""
    if state is not None:
        os.environ["INK_FAKE_SCHEDD_STATE"] = state
    htcondor2.Schedd = FakeSchedd


def uninstall() -> None:
    """Give ``htcondor2.Schedd`` back its real class."""
    htcondor2.Schedd = _REAL_SCHEDD


def _state_path() -> str:
    return os.environ["INK_FAKE_SCHEDD_STATE"]


@contextmanager
def _queue(write: bool):
    path = _state_path()
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
        f.seek(0)
        text = f.read()
        state = json.loads(text) if text.strip() else {"next_cluster": 1, "ads": []}
        ads = [classad2.parseOne(a) for a in state["ads"]]
        yield state, ads
        if write:
            state["ads"] = [repr(ad) for ad in ads]
            f.seek(0)
            f.truncate()
            f.write(json.dumps(state))


def _matches(constraint: str, ad) -> bool:
    return classad2.ExprTree(constraint).eval(ad) is True


class _Result:
    def __init__(self, cluster: int):
        self._cluster = cluster

    def cluster(self) -> int:
        return self._cluster


def _memory_mb(value: str) -> int:
    value = value.strip().upper()
    for suffix, factor in (("MB", 1), ("GB", 1024), ("KB", 1 / 1024)):
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


class FakeSchedd:
    """In-file stand-in for htcondor2.Schedd (FAKE: no daemon behind it)."""

    def __init__(self, location=None):
        self.location = location

    def submit(self, description, count: int = 1, spool: bool = False):
        if not isinstance(description, htcondor2.Submit):
            raise TypeError("submit() takes an htcondor2.Submit")
        owner = pwd.getpwuid(os.getuid()).pw_name
        with _queue(write=True) as (state, ads):
            cluster = state["next_cluster"]
            state["next_cluster"] += 1
            ad = classad2.ClassAd()
            ad["ClusterId"], ad["ProcId"], ad["JobStatus"] = cluster, 0, 1
            ad["Owner"], ad["QDate"], ad["JobPrio"] = owner, int(time.time()), 0
            ad["EnteredCurrentStatus"] = int(time.time())
            for key, value in description.items():
                if key.startswith(("MY.", "+")):
                    attr = key.split(".", 1)[-1].lstrip("+")
                    ad[attr] = classad2.ExprTree(value).eval()
                    continue
                attr = _ATTRS.get(key)
                if attr is None:
                    raise ValueError(f"fake schedd: unknown submit command {key!r}")
                if attr in _EXPRESSIONS:
                    ad[attr] = classad2.ExprTree(value)
                elif attr in _INTEGERS:
                    ad[attr] = int(value)
                elif attr == "RequestMemory":
                    ad[attr] = _memory_mb(value)
                else:
                    ad[attr] = value
            ads.append(ad)
        return _Result(cluster)

    def query(self, constraint: str = "true", projection: list[str] | None = None, **_):
        with _queue(write=False) as (_state, ads):
            out = []
            for ad in ads:
                if _matches(constraint, ad):
                    if projection:
                        ad = classad2.ClassAd({k: ad.eval(k) for k in projection if k in ad})
                    out.append(ad)
            return out

    def act(self, action, job_spec: str, reason: str | None = None):
        if action != htcondor2.JobAction.Remove:
            raise NotImplementedError(f"fake schedd: {action}")
        user = pwd.getpwuid(os.getuid()).pw_name
        with _queue(write=True) as (_state, ads):
            for ad in ads:
                if _matches(job_spec, ad) and ad["JobStatus"] not in (3, 4):
                    if user not in ("root", ad["Owner"]):
                        raise PermissionError(f"{user} may not remove a job of {ad['Owner']}")
                    ad["JobStatus"], ad["RemoveReason"] = 3, f"via condor_rm (by user {user})"
        return None


    def edit(self, job_spec: str, attr: str, value: str, flags=None):
        user = pwd.getpwuid(os.getuid()).pw_name
        with _queue(write=True) as (_state, ads):
            for ad in ads:
                if _matches(job_spec, ad):
                    if user not in ("root", ad["Owner"]):
                        raise PermissionError(f"{user} may not edit a job of {ad['Owner']}")
                    ad[attr] = classad2.ExprTree(value).eval()


# ---- the tests' negotiator and startd ------------------------------------------------------

def _update(job_id: str, **attrs) -> None:
    cluster, proc = (int(x) for x in job_id.split("."))
    with _queue(write=True) as (_state, ads):
        for ad in ads:
            if ad["ClusterId"] == cluster and ad["ProcId"] == proc:
                for key, value in attrs.items():
                    ad[key] = value
                ad["EnteredCurrentStatus"] = int(time.time())


def set_running(job_id: str, host: str) -> None:
    _update(job_id, JobStatus=2, RemoteHost=f"slot1@{host}")


def set_held(job_id: str, reason: str) -> None:
    _update(job_id, JobStatus=5, HoldReason=reason)


def set_idle_reason(job_id: str, reason: str, matches: int = 0) -> None:
    _update(job_id, LastRejMatchReason=reason, NumJobMatches=matches)


def add_foreign_idle_job(owner: str, group: str, prio: int = 0) -> str:
    """Another user's idle job in the same queue (for queue positions)."""
    with _queue(write=True) as (state, ads):
        cluster = state["next_cluster"]
        state["next_cluster"] += 1
        ad = classad2.ClassAd({"ClusterId": cluster, "ProcId": 0, "JobStatus": 1, "Owner": owner,
                               "AcctGroup": group, "JobPrio": prio, "QDate": int(time.time()) - 100})
        ads.append(ad)
    return f"{cluster}.0"
