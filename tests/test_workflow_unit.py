"""The pure parts of the workflow API and the client: request checks against a profile, the
JobSpec they become, job records and their states, the client's stored login. No daemon."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from ink_files_ext.jobs.service import JOB_WRAPPER, make_jobspec
from ink_files_ext.jobs.store import JobStore, public
from ink_files_ext.scopes import CUSTOM_SCOPES, user_role_scopes
from ink_spawner.backends.slurm import SlurmBackend
from ink_spawner.jobstatus import JobState, JobStatus
from ink_spawner.validator import PROFILE_ENV, ExperimentProfile, Profile
from ink_spawner.validator import Refused as RequestError


def check_request(profile, body, home):
    from ink_spawner.validator import check_job

    return check_job(profile, body, home=home)


def profile(backend: str, experiments: dict) -> Profile:
    return Profile(backend=backend, experiments={n: ExperimentProfile.from_dict(n, e)
                                                 for n, e in experiments.items()},
                   site_experiments=frozenset(experiments) | {"atlas"})


PROFILE = profile("slurm", {
    "juno": {"title": "JUNO", "defaults": {"cpus": 1, "memory": "2G", "gpus": 0, "walltime": "1:00:00"},
             "limits": {"cpus": 4, "memory": "8G", "gpus": 1, "walltime": "24:00:00"},
             "routing": {"partition": "juno", "account": "juno-acct"},
             "images": {"el9": "/cvmfs/img/el9.sif"}, "default_image": None},
    "lhaaso": {"title": "LHAASO", "defaults": {"cpus": 1, "memory": "1G", "gpus": 0, "walltime": "1:00:00"},
               "limits": {"cpus": 1, "memory": "1G", "gpus": 0, "walltime": "2:00:00"},
               "routing": {}, "images": {}, "default_image": None},
})


def test_defaults_come_from_the_first_experiment(tmp_path):
    req = check_request(PROFILE, {"command": ["hostname"]}, str(tmp_path))
    assert (req.experiment, req.cpus, req.memory_mb, req.walltime_s) == ("juno", 1, 2048, 3600)
    assert req.workdir == str(tmp_path) and req.routing == {"partition": "juno", "account": "juno-acct"}


def test_limits_are_per_experiment(tmp_path):
    assert check_request(PROFILE, {"command": ["x"], "cpus": 4, "gpus": 1}, str(tmp_path)).cpus == 4
    with pytest.raises(RequestError, match=r"^cpus: 2 is outside the allowed range 1-1$"):
        check_request(PROFILE, {"command": ["x"], "cpus": 2, "experiment": "lhaaso"}, str(tmp_path))
    with pytest.raises(RequestError, match=r"^memory: 9G is more than your limit 8G$"):
        check_request(PROFILE, {"command": ["x"], "memory": "9G"}, str(tmp_path))
    with pytest.raises(RequestError, match=r"^walltime: "):
        check_request(PROFILE, {"command": ["x"], "walltime": "soon"}, str(tmp_path))


@pytest.mark.parametrize("body, field", [
    ({"command": ["x"], "cpus": True}, "cpus"),
    ({"command": ["x"], "cpus": "2"}, "cpus"),
    ({"command": ["x", 3]}, "command"),
    ({"command": ["a\0b"]}, "command"),
    ({"script": ""}, "script"),
    ({"script": "#!/bin/sh\n\0"}, "script"),
    ({}, "command"),
    ({"command": ["x"], "image": "el7"}, "image"),
    ({"command": ["x"], "env": {"A B": "1"}}, "env"),
    ({"command": ["x"], "env": {"JUPYTERHUB_API_TOKEN": "steal"}}, "env"),
    ({"command": ["x"], "env": {"A": 1}}, "env"),
    ({"command": ["x"], "name": "-rf"}, "name"),
    ({"command": ["x"], "workdir": "no/such/dir"}, "workdir"),
    ({"command": ["x"], "hold": True}, "hold"),
])
def test_invalid_requests_name_the_field(tmp_path, body, field):
    with pytest.raises(RequestError) as e:
        check_request(PROFILE, body, str(tmp_path))
    assert e.value.field == field


def test_no_experiment_no_jobs(tmp_path):
    with pytest.raises(RequestError, match="not a member of any experiment"):
        check_request(profile("slurm", {}), {"command": ["x"]}, str(tmp_path))


def test_jobspec_wraps_argv_without_a_shell_string_and_keeps_routing(tmp_path):
    req = check_request(PROFILE, {"command": ["echo", "$(rm -rf ~)", "; ls"], "image": "el9",
                                  "env": {"A": "1"}}, str(tmp_path))
    spec = make_jobspec(req, user="alice", job_id="0123456789ab", job_dir=str(tmp_path / "j"),
                        command=list(req.argv), base_env={"HOME": str(tmp_path)})
    j = str(tmp_path / "j")
    assert spec.command == ("/bin/sh", "-c", JOB_WRAPPER, "ink-job", f"{j}/stderr", f"{j}/exit_code",
                            "echo", "$(rm -rf ~)", "; ls")
    assert spec.partition == "juno" and spec.account == "juno-acct" and spec.image == "/cvmfs/img/el9.sif"
    assert spec.env["A"] == "1" and spec.env["INK_JOB_ID"] == "0123456789ab"
    assert spec.name == "job-0123456789ab" and spec.job_name == "ink-job-0123456789ab"
    assert spec.tags == {"ink": "workflow", "user": "alice", "job": "0123456789ab"}
    argv = SlurmBackend(run_as_user=False).sbatch_argv(spec)
    assert "--partition=juno" in argv and "--comment=ink=workflow,job=0123456789ab,user=alice" in argv


def test_htcondor_jobs_load_their_private_environment(tmp_path):
    """On HTCondor the environment is in a 0600 file, not the job ad: ink_spawner.jobenv loads it."""
    import sys

    env_file = tmp_path / "job.env"
    env_file.write_text(json.dumps({"GREETING": "hello", "PATH": "/usr/bin:/bin"}))
    r = subprocess.run([sys.executable, "-m", "ink_spawner.jobenv", "--", "sh", "-c", "echo $GREETING"],
                       env={"INK_ENV_FILE": str(env_file), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, "hello\n"), r.stderr


def test_wrapper_keeps_stderr_and_exit_status_apart(tmp_path):
    r = subprocess.run(["/bin/sh", "-c", JOB_WRAPPER, "ink-job", str(tmp_path / "err"), str(tmp_path / "exit"),
                        "sh", "-c", "echo out; echo err >&2; exit 4"],
                       env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (4, "out\n", "")
    assert (tmp_path / "err").read_text() == "err\n" and (tmp_path / "exit").read_text() == "4\n"


def _record(store: JobStore) -> dict:
    job_id, _ = store.new_dir()
    record = {"id": job_id, "name": "job", "state": "pending", "backend": "slurm", "backend_id": "77",
              "experiment": "juno", "cpus": 1, "memory_mb": 1, "gpus": 0, "walltime_s": 60,
              "workdir": "/", "stdout_path": "o", "stderr_path": "e", "submitted": 1.0}
    store.save(record)
    return record


def test_store_states(tmp_path):
    store = JobStore(str(tmp_path / "jobs"))
    r = _record(store)
    assert stat.S_IMODE(os.stat(store.root).st_mode) == 0o700
    assert store.update(dict(r), JobStatus("77", JobState.RUNNING, node="wn1"))["state"] == "running"
    # ended and still completing in Slurm, no exit status yet: not final
    assert store.update(dict(r), JobStatus("77", JobState.DONE, settled=False))["state"] == "running"
    (tmp_path / "jobs" / r["id"] / "exit_code").write_text("3\n")
    ended = store.update(dict(r), JobStatus("77", JobState.DONE, reason="failed"))
    assert (ended["state"], ended["exit_code"], ended["reason"]) == ("failed", 3, "exit code 3")
    assert store.load(r["id"])["state"] == "failed", "a final state is written down"
    assert store.find("77")["id"] == r["id"] and store.find("nope") is None
    assert store.load("../../etc") is None
    r2 = _record(store)
    lost = store.update(dict(r2), JobStatus("77", JobState.DONE, reason=None))
    assert lost["state"] == "failed" and "without an exit status" in lost["reason"]
    r3 = _record(store)
    r3["cancel_requested"] = True
    assert store.update(r3, JobStatus("77", JobState.DONE, reason="cancelled"))["state"] == "cancelled"
    assert set(public(store.load(r["id"]))) >= {"id", "state", "submitted", "ended"}


def test_scopes_and_role():
    assert set(CUSTOM_SCOPES) == {"custom:ink:jobs", "custom:ink:jobs:read", "custom:ink:files",
                                  "custom:ink:files:read", "custom:ink:ssh"}
    assert CUSTOM_SCOPES["custom:ink:jobs"]["subscopes"] == ["custom:ink:jobs:read"]
    assert user_role_scopes()[0] == "self" and "custom:ink:jobs!user" in user_role_scopes()
    assert PROFILE_ENV == "INK_WORKFLOW"


def test_profile_from_env():
    env = {PROFILE_ENV: json.dumps({"backend": "slurm", "experiments": {"a": {}}})}
    assert Profile.from_env(env).backend == "slurm" and Profile.from_env({}) is None


def test_client_login_file_is_private(tmp_path, monkeypatch):
    from ink_cli import config

    monkeypatch.setenv("INK_CONFIG", str(tmp_path / "d" / "config.json"))
    monkeypatch.delenv("INK_TOKEN", raising=False)
    monkeypatch.delenv("INK_HUB_URL", raising=False)
    path = config.save({"hub": "http://h", "token": "secret", "user": "alice"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.load()["token"] == "secret"
    monkeypatch.setenv("INK_TOKEN", "other")
    assert config.load() == {"hub": "http://h", "token": "other"}  # user looked up again
    assert config.remove() and not path.exists()


def test_client_exit_codes():
    from ink_cli.api import exit_code_for

    assert [exit_code_for(s) for s in (400, 401, 403, 404, 409, 422, 424, 500, 503)] == \
        [6, 3, 4, 5, 6, 6, 7, 7, 7]


def test_null_is_not_a_default(tmp_path):
    with pytest.raises(RequestError, match="^cpus: must be an integer"):
        check_request(PROFILE, {"command": ["x"], "cpus": None}, str(tmp_path))


SITE = """
limits: {cpus: 4, memory: 8G, walltime: "24:00:00"}
experiments:
  juno:
    title: JUNO
    members: {users: [alice, bob]}
    apps: [portal]
    limits: {cpus: 2}
    routing:
      slurm: {partition: juno, account: juno-acct}
      htcondor: {accounting_group: group_juno, requirements: 'OpSysMajorVer == 9'}
  atlas:
    title: ATLAS
    members: {users: [carol]}
    apps: [portal]
overrides:
  alice: {limits: {cpus: 4}}
"""


async def test_hub_hands_the_portal_the_users_batch_profile(tmp_path):
    """What the hub passes in INK_WORKFLOW: only the user's experiments, limits with the user's
    override, the routing of the hub's backend; the portal app is marked jobs: true."""
    from ink_hub.catalogue.load import load_site
    from ink_hub.catalogue.resolve import CatalogueResolver

    (tmp_path / "site.yaml").write_text(SITE)
    site = load_site([str(tmp_path / "site.yaml")])
    assert site.catalogue.apps["portal"].jobs and not site.catalogue.apps["jupyter"].jobs
    resolver = CatalogueResolver(site.catalogue)
    alice = json.loads((await resolver.profile_for("alice", set(), "slurm")).to_json())
    bob = json.loads((await resolver.profile_for("bob", set(), "htcondor")).to_json())
    assert set(alice["experiments"]) == {"juno"} and alice["backend"] == "slurm"
    assert alice["experiments"]["juno"]["limits"]["cpus"] == 4  # her override
    assert bob["experiments"]["juno"]["limits"]["cpus"] == 2
    assert alice["experiments"]["juno"]["routing"] == {"partition": "juno", "account": "juno-acct"}
    assert bob["experiments"]["juno"]["routing"] == {"account": "group_juno",
                                                     "requirements": "OpSysMajorVer == 9"}
    profile = Profile.from_env({PROFILE_ENV: json.dumps(alice)})
    req = check_request(profile, {"command": ["x"], "cpus": 4}, str(tmp_path))
    assert req.routing["partition"] == "juno"
    with pytest.raises(RequestError, match=r"^experiment: you are not a member of 'atlas' \(yours: juno\)$"):
        check_request(profile, {"command": ["x"], "experiment": "atlas"}, str(tmp_path))


def test_hub_config_defines_scopes_and_keeps_a_sites_roles():
    from traitlets.config import Config

    from ink_hub.scopes import configure_scopes

    c = Config()
    c.JupyterHub.load_roles = [{"name": "monitor", "scopes": ["read:metrics"]}]
    configure_scopes(c)
    names = [r["name"] for r in c.JupyterHub.load_roles]
    assert names == ["monitor", "user"] and set(CUSTOM_SCOPES) <= set(c.JupyterHub.custom_scopes)
    own = Config()
    own.JupyterHub.load_roles = [{"name": "user", "scopes": ["self"]}]
    configure_scopes(own)
    assert own.JupyterHub.load_roles == [{"name": "user", "scopes": ["self"]}]  # the site's choice
