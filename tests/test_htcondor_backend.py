"""HTCondor backend: real htcondor2.Submit and classad2 on everything it produces; a FAKE
schedd (tests/fake_schedd.py) stands in for the daemons, which cannot be installed here."""

from __future__ import annotations

import asyncio
import os
import pwd

import classad2
import htcondor2
import pytest

from ink_spawner.backends import BackendError, JobState
from ink_spawner.backends.htcondor import (PROJECTION, QUERY_CONSTRAINT, HTCondorBackend,
                                           condor_arguments)
from ink_spawner.jobspec import JobSpec

from . import fake_schedd
from .condor_pool import FakePool, decode_condor_arguments
from .harness import VENV_BIN


@pytest.fixture
def pool(unix_users):
    p = FakePool()
    yield p
    p.close()


def backend(pool, **kw):
    return HTCondorBackend(submit_helper=pool.helper, **kw)


def spec(user="alice", **kw):
    home = pwd.getpwnam(user).pw_dir
    fields = dict(user=user, name="jupyter", command=(str(VENV_BIN / "ink-session"), "--ip", "0.0.0.0",
                                                      "--", "jupyterhub-singleuser"),
                  env={"JUPYTERHUB_API_TOKEN": "s3cret-token-value", "HOME": home}, workdir=home,
                  output_path=f"{home}/.ink/logs/jupyter-test.log", cpus=2, memory_mb=4096,
                  walltime_s=7200, tags={"hub": "ink", "user": user, "server": "jupyter"})
    fields.update(kw)
    return JobSpec(**fields)


@pytest.mark.parametrize("argv", [
    ["plain", "two words", "it's", 'say "hi"', "", "--ServerApp.x='a b'", "tab\there"],
])
def test_arguments_round_trip_through_the_quoting_rules(argv):
    text = condor_arguments(argv)
    assert decode_condor_arguments(text) == argv
    # and the real submit parser takes it as one value
    assert htcondor2.Submit({"executable": "/bin/true", "arguments": text})["arguments"] == text


@pytest.mark.parametrize("bad", ["$(Owner)", "line\nbreak"])
def test_arguments_that_htcondor_would_rewrite_are_refused(bad):
    with pytest.raises(BackendError):
        condor_arguments(["ok", bad])


def test_submit_description_parses_with_the_real_bindings():
    b = HTCondorBackend(accounting_group="group_ink", extra_submit={"requirements": "(TARGET.IsInteractive =?= true)",
                                                            "request_cpus": "64"})
    s = spec(gpus=1, image="/cvmfs/unpacked.cern.ch/alma9.sif", account="juno")
    d = b.submit_description(s)
    sub = htcondor2.Submit(d)
    assert sub["request_cpus"] == "2", "a site default must not override the session's own request"
    assert sub["request_memory"] == "4096MB" and sub["request_gpus"] == "1"
    assert sub["universe"] == "container" and sub["container_image"].endswith("alma9.sif")
    assert sub["accounting_group"] == "juno" and sub["accounting_group_user"] == "alice"
    assert sub["concurrency_limits"] == "ink_jupyter"
    assert sub["requirements"] == "(TARGET.IsInteractive =?= true)"
    assert sub["getenv"] == "false"
    assert decode_condor_arguments(sub["arguments"]) == list(s.command[1:])
    # expressions and custom attributes are real ClassAd syntax
    ad = classad2.ClassAd({"JobStatus": 2, "EnteredCurrentStatus": 0,
                           "MaxWallTime": classad2.ExprTree(sub["MY.MaxWallTime"]).eval()})
    assert classad2.ExprTree(sub["periodic_remove"]).eval(ad) is True  # ran far longer than 2 h
    ad["EnteredCurrentStatus"] = int(__import__("time").time()) - 60
    assert classad2.ExprTree(sub["periodic_remove"]).eval(ad) is False  # one minute in: keeps running
    for key in ("MY.InkHub", "MY.InkUser", "MY.InkServer", "MY.InkApp"):
        assert isinstance(classad2.ExprTree(sub[key]).eval(), str)
    # the token is nowhere in the description: it travels in the 0600 env file
    assert "s3cret" not in repr(d)
    assert decode_condor_arguments(sub["environment"]) == [f"INK_ENV_FILE={b.env_file_for(s)}",
                                                           "INK_MERGE_STDERR=1"]


def test_query_constraint_and_projection_are_valid_classad():
    expr = classad2.ExprTree(QUERY_CONSTRAINT)
    assert expr.eval(classad2.ClassAd({"InkHub": "ink", "JobStatus": 2})) is True
    assert expr.eval(classad2.ClassAd({"JobStatus": 1})) is True
    assert expr.eval(classad2.ClassAd({"JobStatus": 2})) is not True
    assert all(classad2.ExprTree(attr) for attr in PROJECTION)


def test_extra_submit_rejects_malformed_commands():
    with pytest.raises(BackendError):
        HTCondorBackend(extra_submit={"bad key": "x"}).submit_description(spec())


async def test_submit_runs_as_the_user_and_keeps_the_token_out_of_the_ad(pool):
    b = backend(pool)
    s = spec()
    job_id = await b.submit(s)
    ad = pool.ad(job_id)
    assert ad["Owner"] == "alice", "the helper must submit as the session's user"
    assert "s3cret-token-value" not in repr(ad)
    env_file = b.env_file_for(s)
    st = os.stat(env_file)
    assert st.st_uid == pwd.getpwnam("alice").pw_uid and st.st_mode & 0o077 == 0
    assert os.stat(os.path.dirname(env_file)).st_mode & 0o077 == 0
    assert "s3cret-token-value" in open(env_file).read()
    await b.cancel(job_id, "alice")
    assert pool.ad(job_id)["JobStatus"] == 3


async def test_statuses_idle_reason_position_running_held_removed(pool):
    b = backend(pool)
    job_id = await b.submit(spec(account="juno"))
    fake_schedd.add_foreign_idle_job("bob", "juno", prio=10)  # ahead of us in the group
    fake_schedd.set_idle_reason(job_id, "no slot with 2 cores free", matches=0)
    st = (await b.query({job_id}))[job_id]
    assert st.state is JobState.PENDING and (st.position, st.pending_total) == (2, 2)
    assert "no slot with 2 cores free" in st.describe() and "position 2 of 2" in st.describe()
    fake_schedd.set_running(job_id, "wn042.cluster.example")
    st = (await b.query({job_id}))[job_id]
    assert st.state is JobState.RUNNING and st.node == "wn042.cluster.example"
    assert b.host_for(st) == "wn042.cluster.example"
    fake_schedd.set_held(job_id, "Error from slot1@wn042: SHADOW at 1.2.3.4 failed to open /home/alice/x")
    st = (await b.query({job_id}))[job_id]
    assert st.state is JobState.DONE and "failed to open /home/alice/x" in st.reason
    await b.cancel(job_id, "alice")
    st = (await b.query({job_id, "999.0"}))
    assert st[job_id].state is JobState.DONE and st[job_id].reason == "removed"
    assert "999.0" not in st  # the cache marks ids the schedd does not know as ended


async def test_one_schedd_query_serves_every_session(pool, monkeypatch):
    b = backend(pool, poll_interval=0.3, poll_jitter=0)
    jobs = [await b.submit(spec()) for _ in range(10)]
    calls = []
    real_query = fake_schedd.FakeSchedd.query

    def counting_query(self, *args, **kwargs):
        calls.append(kwargs.get("constraint"))
        return real_query(self, *args, **kwargs)

    monkeypatch.setattr(fake_schedd.FakeSchedd, "query", counting_query)
    cache = b.status_cache
    for job_id in jobs:
        cache.watch(job_id)
    await asyncio.gather(*(cache.fresh(j) for j in jobs))
    calls.clear()
    await asyncio.sleep(1.0)
    assert 2 <= len(calls) <= 4, calls  # ~3 intervals of 0.3 s, one query each for all 10 jobs
    assert set(calls) == {QUERY_CONSTRAINT}
    for job_id in jobs:
        cache.unwatch(job_id)
        await b.cancel(job_id, "alice")


async def test_no_schedd_is_a_clear_error(pool):
    """The REAL htcondor2.Schedd on a machine with no HTCondor daemon: clear messages, no hang."""
    fake_schedd.uninstall()  # this process and the helper use the real bindings
    b = HTCondorBackend(submit_helper=[str(VENV_BIN / "ink-condor-job")])
    with pytest.raises(BackendError, match="did not answer the status query.*Unable to locate"):
        await b.query({"1.0"})
    with pytest.raises(BackendError, match="HTCondor submit failed.*Unable to locate"):
        await b.submit(spec())


async def test_wall_time_is_read_from_the_ad_and_extended_by_the_owner(pool):
    b = backend(pool)
    job_id = await b.submit(spec(walltime_s=3600))
    fake_schedd.set_running(job_id, "wn001")
    st = (await b.query({job_id}))[job_id]
    assert st.time_limit_s == 3600 and 0 <= st.time_used_s < 60
    await b.extend(job_id, "alice", 7200)  # through the helper, as alice
    assert pool.ad(job_id)["MaxWallTime"] == 7200
    assert (await b.query({job_id}))[job_id].time_limit_s == 7200
    with pytest.raises(BackendError, match="may not edit"):
        await b.extend(job_id, "bob", 99999)  # the schedd refuses another user's edit
    await b.cancel(job_id, "alice")


async def test_a_job_id_that_is_not_the_sessions_own_is_refused(pool):
    """The helper runs as the user: if it reported another user's job, the hub must not adopt it."""
    b = backend(pool)
    bobs = fake_schedd.add_foreign_idle_job("bob", "juno")

    async def lying_helper(user, args, stdin):
        return {"job_id": bobs}

    b._helper = lying_helper
    with pytest.raises(BackendError, match="not this session's job"):
        await b.submit(spec())


async def test_job_ad_usage_rides_on_the_one_status_query(pool, monkeypatch):
    """RemoteUserCpu, RemoteSysCpu, ResidentSetSize, MemoryUsage (an expression, as the schedd
    writes it) and DiskUsage come with the status query, in seconds and bytes; asking for them
    makes no schedd query of its own, and an ended job's ad keeps its final figures."""
    b = backend(pool, poll_interval=0.2, poll_jitter=0)
    job_id = await b.submit(spec())
    calls = []
    real_query = fake_schedd.FakeSchedd.query

    def counting_query(self, *args, **kwargs):
        calls.append(kwargs.get("constraint"))
        return real_query(self, *args, **kwargs)

    monkeypatch.setattr(fake_schedd.FakeSchedd, "query", counting_query)
    cache = b.status_cache
    cache.watch(job_id)
    await cache.fresh(job_id)
    assert cache.usage(job_id) is None  # idle, the shadow has reported nothing
    fake_schedd.set_running(job_id, "wn042.cluster.example")
    fake_schedd._update(job_id, RemoteUserCpu=90.5, RemoteSysCpu=2.5, ResidentSetSize=512 * 1024,
                        DiskUsage=2048, MemoryUsage=classad2.ExprTree("((ResidentSetSize + 1023) / 1024)"))
    await cache.fresh(job_id)
    usage = cache.usage(job_id)
    assert usage == {"source": "job ad", "cpu_user_s": 90.5, "cpu_sys_s": 2.5, "cpu_s": 93.0,
                     "rss": 512 << 20, "memory_peak": 512 << 20, "disk_usage": 2 << 20}
    await cache.wait_for_update(5)
    assert set(calls) == {QUERY_CONSTRAINT} and cache.usage_queries == 0
    fake_schedd._update(job_id, JobStatus=4, ExitCode=0, RemoteUserCpu=120.0)
    ended = await cache.fresh(job_id)
    assert ended.state is JobState.DONE and cache.usage(job_id)["cpu_s"] == 122.5
    cache.unwatch(job_id)


def test_a_poisoned_usage_attribute_is_ignored_not_fatal():
    """A job's owner may condor_qedit its own usage attributes: an infinite, NaN, negative or
    absurd figure is dropped, and the ad's other figures still come through (an OverflowError
    here would break the one status query every session of the hub depends on)."""
    from ink_spawner.backends.htcondor import usage_from_ad

    ad = classad2.ClassAd()
    ad["RemoteUserCpu"] = classad2.ExprTree('real("INF")')
    ad["RemoteSysCpu"] = classad2.ExprTree('real("NaN")')
    ad["DiskUsage"] = -5
    ad["ResidentSetSize"] = 1024
    usage = usage_from_ad(ad)
    assert usage == {"source": "job ad", "rss": 1 << 20}
