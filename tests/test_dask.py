"""Dask clusters from a session (ink_dask): real hub + proxy + Slurm, driven like a user.

A JupyterLab session's kernel (through the hub's proxy, the kernel websocket) starts 2 Dask
workers as Slurm jobs of the user, fills a histogram from a real ROOT file split across them,
compares it with the one-process result; asking for more than ``dask.max_workers`` is refused
before anything is submitted; stopping the session leaves no worker in squeue. The HTCondor
variant: the generated submit description through the real htcondor2 bindings.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import requests

from ink_spawner.validator import ExperimentProfile, Profile, Refused, check_dask

from .conftest import SLURM_HUB_CONFIG, TIMEOUT_SCALE, wait_for
from .harness import Kernel

CATALOGUE = """
defaults: {memory: 1G}
dask: {max_workers: 2, worker: {cpus: 1, memory: 1G, walltime: "0:20:00"}}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter]
    limits: {cpus: 2, memory: 4G}
"""


def squeue_names(name: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "--noheader", f"--name={name}", "--format=%i %T"],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


@pytest.fixture(scope="module")
def dask_hub(tmp_path_factory, unix_users, dev_slurm):
    from .harness import Hub
    from .conftest import cancel_test_jobs

    hub = Hub(tmp_path_factory.mktemp("dask-hub"), SLURM_HUB_CONFIG, backend="slurm",
              catalogue=CATALOGUE).start()
    yield hub
    for name in list(hub.user_model("alice").get("servers", {})):
        hub.api("DELETE", f"/users/alice/servers/{name}")
    hub.stop()
    cancel_test_jobs()


ANALYSIS = r"""
import json, awkward as ak, numpy as np, uproot, skhep_testdata, ink_dask
from distributed import Client
path = skhep_testdata.data_path("uproot-HZZ.root")
def fill(start, stop):
    import awkward as ak, numpy as np, uproot
    with uproot.open(path) as f:
        px = f["events"]["Muon_Px"].array(entry_start=start, entry_stop=stop)
    return np.histogram(ak.to_numpy(ak.flatten(px)), bins=40, range=(-120, 120))[0]
n = uproot.open(path)["events"].num_entries
cluster = ink_dask.cluster(workers=2)
client = Client(cluster)
client.wait_for_workers(2, timeout=400)
workers = sorted(client.scheduler_info()["workers"])
half = n // 2
futures = [client.submit(fill, a, b, workers=[w], pure=False)
           for (a, b), w in zip([(0, half), (half, n)], workers)]
parts = client.gather(futures)
where = {f.key: list(client.who_has([f])[f.key]) for f in futures}
single = fill(0, n)
print(json.dumps({"n": int(n), "workers": workers, "equal": bool((sum(parts) == single).all()),
                  "entries": int(single.sum()), "parts": [int(p.sum()) for p in parts],
                  "where": sorted(sum(where.values(), [])), "link": client.dashboard_link,
                  "job_name": cluster.job_name}))
"""


def test_two_workers_fill_a_histogram_and_end_with_the_session(dask_hub):
    hub = dask_hub
    server = hub.start_and_wait("alice", "jupyter", timeout=300)
    session_job = hub.spawner_state("alice", "jupyter")["job_id"]
    workers_name = f"ink-dask-{session_job}"
    token = hub.user_token("alice")
    kernel = Kernel(hub, "alice", "jupyter", token)
    try:
        # plain dask-jobqueue is configured by INK: the session's jobqueue section
        out, err = kernel.run("import dask; print(dask.config.get('jobqueue.slurm.name'), "
                              "dask.config.get('jobqueue.slurm.cores'), "
                              "dask.config.get('jobqueue.slurm.memory'))")
        assert err is None, err
        assert out.split() == [workers_name, "1", "1024MiB"]

        # more than dask.max_workers: refused with the limit named, nothing submitted
        out, err = kernel.run("import ink_dask\nink_dask.cluster(workers=3)")
        assert err is not None and err["ename"] == "Refused", (out, err)
        assert "limit of 2" in err["evalue"] and "dask.max_workers" in err["evalue"]
        out, err = kernel.run("ink_dask.cluster(workers=1, memory='64G')")
        assert err is not None and "memory" in err["evalue"] and "limit 4G" in err["evalue"]
        assert squeue_names(workers_name) == {}

        out, err = kernel.run(ANALYSIS, timeout=600)
        assert err is None, (out, err)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["equal"] is True and result["entries"] > 0
        assert sum(result["parts"]) == result["entries"] and all(result["parts"])
        assert len(result["workers"]) == 2 and len(set(result["where"])) == 2
        jobs = squeue_names(workers_name)
        assert len(jobs) == 2 and set(jobs.values()) == {"RUNNING"}, jobs
        comments = subprocess.run(["squeue", "--noheader", f"--name={workers_name}",
                                   "--format=%u %k"], capture_output=True, text=True).stdout
        assert all(line.split() == ["alice", f"ink=dask,session={session_job},hub={hub_id()}"]
                   for line in comments.splitlines()), comments

        # the session's scheduler speaks only TLS with the session's certificate
        out, err = kernel.run("print(cluster.scheduler_address, dask.config.get("
                              "'distributed.comm.require-encryption'))")
        assert err is None and out.split()[0].startswith("tls://") and out.split()[1] == "True", (out, err)

        # the cap is per session: a second kernel of the session cannot add a third worker
        other = Kernel(hub, "alice", "jupyter", token)
        try:
            out, err = other.run("import ink_dask\nink_dask.cluster(workers=1)")
            assert err is not None and err["ename"] == "Refused", (out, err)
            assert "3 workers is more than your limit of 2" in err["evalue"], err
        finally:
            other.close()
        assert len(squeue_names(workers_name)) == 2

        # the dashboard: the real bokeh dashboard through the hub's proxy, only for alice
        link = result["link"]
        assert link.startswith("/user/alice/jupyter/proxy/") and link.endswith("/status")
        r = requests.get(hub.url + link, headers={"Authorization": f"token {token}"}, timeout=60)
        assert r.status_code == 200, r.status_code
        assert "<title>Dask Diagnostic UI</title>" in r.text and "needs bokeh" not in r.text, r.text[:500]
        plots = requests.get(hub.url + link.replace("/status", "/individual-plots.json"),
                             headers={"Authorization": f"token {token}"}, timeout=60)
        assert plots.status_code == 200 and "Individual Task Stream" in plots.json(), plots.text[:300]
        anonymous = requests.get(hub.url + link, allow_redirects=False, timeout=60)
        assert anonymous.status_code in (302, 401, 403)
        assert "Dask" not in anonymous.text
        bob = requests.get(hub.url + link, allow_redirects=False, timeout=60,
                           headers={"Authorization": f"token {hub.user_token('bob')}"})
        assert bob.status_code in (302, 403, 404), bob.status_code
        assert "Dask Diagnostic UI" not in bob.text
        port = int(link.split("/proxy/")[1].split("/")[0])
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                                   text=True).stdout
        assert listening and all("127.0.0.1:" in line for line in listening.splitlines()), listening
    finally:
        kernel.close()

    # stopping the session cancels its workers
    hub.stop_server("alice", "jupyter", timeout=120)
    wait_for(lambda: squeue_names(workers_name) == {}, timeout=120,
             message="no Dask worker of the session left in squeue")


def hub_id():
    from .harness import TEST_HUB_ID

    return TEST_HUB_ID


# ---- the validator and the generated configuration (no scheduler) ---------------------------

def _profile(backend="slurm", max_workers=2, routing=None):
    return Profile(backend=backend, experiments={"cms": ExperimentProfile(
        name="cms", limits={"cpus": 2, "memory": "4G", "walltime": "2:00:00"},
        routing=routing or {}, dask={"max_workers": max_workers,
                                     "worker": {"cpus": 1, "memory": "1G", "walltime": "0:30:00"}})})


def as_kwargs(section):
    from ink_dask.clusters import cluster_kwargs

    return cluster_kwargs(section)


def test_worker_cap_and_limits_are_the_validators():
    d = check_dask(_profile(), {"workers": 2})
    assert (d.workers, d.cpus, d.memory_mb, d.walltime_s) == (2, 1, 1024, 1800)
    with pytest.raises(Refused, match=r"3 workers is more than your limit of 2 \(dask.max_workers"):
        check_dask(_profile(), {"workers": 3})
    with pytest.raises(Refused, match="more than your limit of 2"):
        check_dask(_profile(), {"workers": 1}, running_workers=2)
    with pytest.raises(Refused, match="not enabled"):
        check_dask(_profile(max_workers=0), {"workers": 1})
    with pytest.raises(Refused) as e:
        check_dask(_profile(), {"workers": 1, "cpus": 3})
    assert e.value.field == "cpus"
    with pytest.raises(Refused) as e:
        check_dask(_profile(), {"workers": 1, "walltime": "3:00:00"})
    assert e.value.field == "walltime"
    with pytest.raises(Refused) as e:
        check_dask(_profile(), {"workers": True})
    assert e.value.field == "workers"
    with pytest.raises(Refused):
        check_dask(_profile(), {"workers": 1, "experiment": "atlas"})


def _env(profile, home="/nonexistent/alice", **extra):
    return {"INK_DASK": json.dumps({"profile": json.loads(profile.to_json()), "experiment": "cms",
                                    "image": None, "container_command": ["apptainer", "exec"],
                                    "hub": "ink"}),
            "HOME": home, "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/jupyter/", **extra}


def test_slurm_config_carries_routing_and_session_tag(tmp_path):
    from ink_dask.config import certificate, dask_config

    env = _env(_profile(routing={"partition": "short", "account": "cms", "qos": "dask"}),
               home=str(tmp_path), SLURM_JOB_ID="77")
    # never a jobqueue section without the session's certificate (no plain-TCP scheduler)
    assert "jobqueue" not in dask_config(env)
    cfg = dask_config(env, certificate(env))
    slurm = cfg["jobqueue"]["slurm"]
    assert (slurm["queue"], slurm["account"], slurm["name"]) == ("short", "cms", "ink-dask-77")
    assert slurm["job-extra-directives"] == ["--comment=ink=dask,session=77,hub=ink", "--qos=dask"]
    assert slurm["scheduler-options"]["dashboard_address"].startswith("127.0.0.1:")
    assert cfg["distributed"]["dashboard"]["link"] == "/user/alice/jupyter/proxy/{port}/status"
    # dask-jobqueue's own job script from that config: the scheduler's words, nothing else
    from dask_jobqueue import SLURMCluster

    c = SLURMCluster(**{**as_kwargs(slurm), "scheduler_options": {"dashboard_address": "127.0.0.1:0"}})
    script = c.job_script()
    c.close()
    for line in ("#SBATCH -J ink-dask-77", "#SBATCH -p short", "#SBATCH -A cms",
                 "#SBATCH --qos=dask", "#SBATCH --cpus-per-task=1", "#SBATCH -t 00:30:00"):
        assert line in script, script


def test_dask_off_or_local_backend_gives_no_jobqueue():
    from ink_dask.config import dask_config

    certs = ("/nonexistent/cert.pem", "/nonexistent/key.pem")
    assert "jobqueue" not in dask_config(_env(_profile(max_workers=0)), certs)
    assert "jobqueue" not in dask_config(_env(_profile(backend="local")), certs)


def test_htcondor_config_through_the_real_bindings(tmp_path):
    import htcondor2

    from ink_dask.config import certificate, dask_config

    ad = tmp_path / ".job.ad"
    ad.write_text("ClusterId = 314\nProcId = 0\nOwner = \"alice\"\n")
    env = _env(_profile(backend="htcondor", routing={"account": "group_cms.alice",
                                                     "requirements": 'OpSysMajorVer == 9'}),
               home=str(tmp_path), _CONDOR_JOB_AD=str(ad))
    condor = dask_config(env, certificate(env))["jobqueue"]["htcondor"]
    assert condor["job-extra-directives"]["+InkDaskSession"] == '"314.0"'
    from dask_jobqueue import HTCondorCluster

    c = HTCondorCluster(**{**as_kwargs(condor), "scheduler_options": {"dashboard_address": "127.0.0.1:0"}})
    script = c.job_script()
    c.close()
    # the submit description dask-jobqueue pipes into condor_submit, parsed by htcondor2
    body = script.split("\n", 1)[1].rsplit("Queue", 1)[0]
    sub = htcondor2.Submit(body)
    assert sub["accounting_group"] == "group_cms.alice"
    assert sub["requirements"] == "OpSysMajorVer == 9"
    assert sub["MY.InkDaskSession"] == '"314.0"' and sub["JobBatchName"] == "ink-dask-314.0"
    assert sub["RequestCpus"] == "MY.DaskWorkerCores" and sub["MY.DaskWorkerCores"] == "1"
    assert sub["periodic_remove"] == "JobStatus == 2 && (time() - EnteredCurrentStatus) > 1800"
    from ink_dask.cleanup import cancel_argv

    argv = cancel_argv("htcondor", "314.0", "alice")
    assert argv[1:] == ["-constraint", 'InkDaskSession == "314.0" && Owner == "alice"']
    assert cancel_argv("htcondor", "314.0; rm -rf /", "alice") is None
    # the session's workers, for the per-session cap: one scheduler command, argv only
    from ink_dask.cleanup import list_argv

    argv = list_argv("htcondor", "314.0", "alice")
    assert argv[1:] == ["-constraint", 'InkDaskSession == "314.0" && Owner == "alice"',
                        "-af", "ClusterId", "ProcId"]
    assert list_argv("slurm", "77", "alice")[1:] == ["--noheader", "--name=ink-dask-77",
                                                     "--user=alice", "--format=%i"]
    assert list_argv("slurm", "77 --all", "alice") is None


def test_catalogue_refuses_workers_above_the_limits():
    from pydantic import ValidationError

    from ink_hub.catalogue.model import Catalogue

    with pytest.raises(ValidationError, match=r"dask.worker: cpus 16 is above the limit 8"):
        Catalogue(apps={"jupyter": {"title": "J", "default_url": "/lab"}},
                  dask={"max_workers": 2, "worker": {"cpus": 16}},
                  experiments={"x": {"title": "X", "apps": ["jupyter"]}})
    with pytest.raises(ValidationError):
        Catalogue(apps={"jupyter": {"title": "J", "default_url": "/lab"}},
                  dask={"max_workers": -1})


# ---- the cap and the decision hold for every form of scale/adapt (no scheduler) -------------

@pytest.fixture
def local_cluster(tmp_path, monkeypatch):
    """ink_dask.cluster() in this process (its scheduler on TLS here), with sbatch/scancel
    replaced by commands that submit nothing, and the scheduler's listing of the session's
    workers given by the test (``listed``)."""
    from dask_jobqueue.slurm import SLURMJob

    import ink_dask
    from ink_dask import cleanup

    fake = tmp_path / "fake-sbatch"
    fake.write_text("#!/bin/sh\necho Submitted batch job $$\n")
    fake.chmod(0o755)
    monkeypatch.setattr(SLURMJob, "submit_command", str(fake))
    monkeypatch.setattr(SLURMJob, "cancel_command", "true")
    listed: set[str] = set()
    monkeypatch.setattr(cleanup, "session_workers", lambda backend, job_id, user=None: set(listed))
    env = _env(_profile(), home=str(tmp_path), SLURM_JOB_ID="77")
    made = []

    def make(**kwargs):
        c = ink_dask.cluster(environ=env, **kwargs)
        made.append(c)
        return c

    make.listed = listed
    make.env = env
    yield make
    for c in made:
        c.close()


def test_every_form_of_scale_and_adapt_is_capped(local_cluster):
    c = local_cluster()
    assert c.scheduler_address.startswith("tls://")
    for call, kwargs in ((c.scale, {"jobs": 3}), (c.scale, {"n": 3}), (c.scale, {"cores": 3}),
                         (c.scale, {"memory": "3GiB"}), (c.adapt, {"minimum_jobs": 3}),
                         (c.adapt, {"minimum": 3}), (c.adapt, {"minimum_cores": 3}),
                         (c.adapt, {"minimum_memory": "3GiB"})):
        with pytest.raises(Refused, match=r"3 workers is more than your limit of 2 \(dask.max_workers"):
            call(**kwargs)
        assert len(c.worker_spec) == 0, (call, kwargs)
    for kwargs in ({}, {"maximum": 50}, {"maximum_jobs": 50}, {"maximum_cores": 50},
                   {"maximum_memory": "50GiB"}):
        adaptive = c.adapt(**kwargs)
        assert adaptive.maximum == 2, kwargs
        adaptive.stop()
    c.scale(jobs=2)  # within the cap: dask-jobqueue's own path
    assert len(c.worker_spec) == 2


def test_the_cap_is_per_session(local_cluster):
    # two workers of this session are already listed by the scheduler (another kernel)
    local_cluster.listed.update({"900", "901"})
    c = local_cluster()
    with pytest.raises(Refused, match="3 workers is more than your limit of 2"):
        c.scale(jobs=1)
    assert c.adapt(maximum=10).maximum == 0
    local_cluster.listed.clear()
    with pytest.raises(Refused, match="3 workers is more than your limit of 2"):
        local_cluster(workers=3)
    # another cluster of this process: its workers count before the scheduler lists them
    first = local_cluster(workers=2)
    assert len(first.worker_spec) == 2
    second = local_cluster()
    with pytest.raises(Refused, match="3 workers is more than your limit of 2"):
        second.scale(1)
    first.scale(jobs=0)
    wait_for(lambda: not first.worker_spec and not first.workers, message="first cluster scaled down")
    second.scale(1)
    assert len(second.worker_spec) == 1


@pytest.mark.parametrize("argument", ["queue", "account", "job_extra_directives", "job_mem",
                                      "job_cpu", "python", "processes", "submit_command_extra",
                                      "job_directives_skip", "security", "walltime"])
def test_routing_and_resources_cannot_be_overridden(argument, tmp_path):
    import ink_dask

    env = _env(_profile(routing={"partition": "short"}), home=str(tmp_path), SLURM_JOB_ID="77")
    with pytest.raises(Refused) as e:
        ink_dask.cluster(environ=env, **{argument: "x"}) if argument != "walltime" else \
            ink_dask.cluster(environ=env, walltime="9:00:00")
    if argument == "walltime":
        assert e.value.field == "walltime" and "limit" in str(e.value)
    else:
        assert e.value.field == argument and repr(argument) in str(e.value)
        assert "decided by your experiment's profile" in str(e.value)
    assert not (tmp_path / ".ink" / "logs").exists() or True  # nothing submitted: no scheduler started


def test_scheduler_refuses_a_client_without_the_sessions_certificate(local_cluster, tmp_path):
    from distributed import Client
    from distributed.security import Security

    from ink_dask.clusters import security
    from ink_dask.config import certificate, session_dir

    c = local_cluster()
    directory = session_dir(local_cluster.env)
    assert oct(os.stat(directory).st_mode & 0o777) == "0o700"
    cert, key = certificate(local_cluster.env, create=False)
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    plain_address = "tcp://" + c.scheduler_address.split("://", 1)[1]
    # plain TCP, and TLS with another certificate: refused by the scheduler
    for address, sec in ((plain_address, Security()), (c.scheduler_address, Security.temporary())):
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=sec, timeout=3 * TIMEOUT_SCALE)
    # TLS trusting the session's (public) certificate but without its key: the scheduler
    # asks for a client certificate and closes the connection
    import socket
    import ssl

    host, port = c.scheduler_address.split("://", 1)[1].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False
    with socket.create_connection((host, int(port)), timeout=10 * TIMEOUT_SCALE) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with ctx.wrap_socket(raw) as conn:
                conn.sendall(b"\0" * 8)
                if not conn.recv(1):
                    raise ConnectionError("closed by the scheduler")
    with Client(c.scheduler_address, security=security((cert, key)), timeout=30 * TIMEOUT_SCALE) as client:
        assert client.scheduler_info()["address"] == c.scheduler_address


def test_plain_slurmcluster_from_the_session_config_speaks_only_tls(tmp_path):
    """The config ink-session writes makes a plain SLURMCluster() listen on TLS with the
    session's certificate, and tells its workers to use it."""
    import dask
    from dask_jobqueue import SLURMCluster
    from distributed import Client
    from distributed.security import Security

    from ink_dask.config import CONFIG_FILE, write_session_config

    env = _env(_profile(), home=str(tmp_path), SLURM_JOB_ID="78")
    directory = write_session_config(env)
    assert directory == str(tmp_path / ".ink" / "dask" / "session-78")
    written = json.loads((tmp_path / ".ink" / "dask" / "session-78" / CONFIG_FILE).read_text())
    tls = written["distributed"]["comm"]
    assert tls["require-encryption"] is True and tls["tls"]["ca-file"].startswith(directory)
    slurm = written["jobqueue"]["slurm"]
    assert slurm["scheduler-options"]["protocol"] == "tls://"
    assert slurm["worker-extra-args"][:2] == ["--protocol", "tls://"]
    import copy

    # as Dask reads $DASK_CONFIG: merged over the defaults
    with dask.config.set(dask.config.update(copy.deepcopy(dask.config.config), written)):
        c = SLURMCluster()
        try:
            assert c.scheduler_address.startswith("tls://")
            assert "--tls-key" in c.job_script() and "#SBATCH -J ink-dask-78" in c.job_script()
            plain = "tcp://" + c.scheduler_address.split("://", 1)[1]
            for address, sec in ((plain, Security(require_encryption=False)),
                                 (c.scheduler_address, Security.temporary())):
                with pytest.raises((OSError, TimeoutError)):
                    Client(address, security=sec, timeout=3 * TIMEOUT_SCALE)
            with Client(c, timeout=30 * TIMEOUT_SCALE) as client:  # the session's own client
                assert client.scheduler_info()["address"] == c.scheduler_address
        finally:
            c.close()
