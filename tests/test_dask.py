"""Dask clusters from a session (ink_dask): real hub + proxy + Slurm, driven like a user.

A JupyterLab session's kernel (through the hub's proxy, the kernel websocket) starts 2 Dask
workers as Slurm jobs of the user, fills a histogram from a real ROOT file split across them,
compares it with the one-process result; asking for more than ``dask.max_workers`` is refused
before anything is submitted; stopping the session leaves no worker in squeue. The HTCondor
variant: the generated submit description through the real htcondor2 bindings.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests

from ink_spawner.validator import ExperimentProfile, Profile, Refused, check_dask

from .conftest import SLURM_HUB_CONFIG, wait_for
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

        # the dashboard: a link through the hub's proxy, which answers only with a login
        link = result["link"]
        assert link.startswith("/user/alice/jupyter/proxy/") and link.endswith("/status")
        r = requests.get(hub.url + link, headers={"Authorization": f"token {token}"}, timeout=60)
        assert r.status_code == 200 and "Dask" in r.text, r.status_code
        anonymous = requests.get(hub.url + link, allow_redirects=False, timeout=60)
        assert anonymous.status_code in (302, 401, 403)
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
    from ink_dask.config import dask_config

    env = _env(_profile(routing={"partition": "short", "account": "cms", "qos": "dask"}),
               home=str(tmp_path), SLURM_JOB_ID="77")
    cfg = dask_config(env)
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

    assert "jobqueue" not in dask_config(_env(_profile(max_workers=0)))
    assert "jobqueue" not in dask_config(_env(_profile(backend="local")))


def test_htcondor_config_through_the_real_bindings(tmp_path):
    import htcondor2

    from ink_dask.config import dask_config

    ad = tmp_path / ".job.ad"
    ad.write_text("ClusterId = 314\nProcId = 0\nOwner = \"alice\"\n")
    env = _env(_profile(backend="htcondor", routing={"account": "group_cms.alice",
                                                     "requirements": 'OpSysMajorVer == 9'}),
               home=str(tmp_path), _CONDOR_JOB_AD=str(ad))
    condor = dask_config(env)["jobqueue"]["htcondor"]
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
