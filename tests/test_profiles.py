"""Experiment profiles enforced on every spawn: real hub + proxy + Slurm, REST spawns."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from .conftest import SLURM_HUB_CONFIG, job_pids, squeue_active

pytestmark = [pytest.mark.slurm, pytest.mark.hub]

SETUP_DIR = "/opt/ink-test"
CATALOGUE = f"""
site: {{max_sessions_per_user: 1}}
defaults: {{memory: 1G}}
images:
  alma9: {{title: AlmaLinux 9, path: /opt/ink-test/images/alma9.sif}}
apps:
  second: {{title: Second JupyterLab, default_url: /lab}}
experiments:
  juno:
    title: JUNO
    members: {{groups: [juno]}}
    apps: [jupyter, second, portal]
    limits: {{cpus: 4}}
    routing: {{slurm: {{partition: debug, account: juno}}}}
    setup: {SETUP_DIR}/juno-setup.sh
    kernels:
      juno-py:
        display_name: JUNO Python
        argv: [python3, -m, ipykernel_launcher, -f, "{{connection_file}}"]
        env: {{JUNO_KERNEL: "1"}}
  besiii:
    title: BESIII
    members: {{users: [bob]}}
    apps: [jupyter]
    images: [alma9]
    default_image: alma9
  lhaaso:
    title: LHAASO
    members: {{unix_groups: [inklhaaso]}}
    apps: [jupyter]
    limits: {{cpus: 2}}
overrides:
  carol: {{limits: {{cpus: 16}}}}
"""


@pytest.fixture(scope="module")
def site_setup(unix_users):
    os.makedirs(SETUP_DIR, exist_ok=True)
    with open(f"{SETUP_DIR}/juno-setup.sh", "w") as f:
        f.write("export JUNO_TOP=/cvmfs/juno.ihep.ac.cn/sw\n")
    os.chmod(SETUP_DIR, 0o755)
    os.chmod(f"{SETUP_DIR}/juno-setup.sh", 0o644)
    subprocess.run(["groupadd", "-f", "inklhaaso"], check=True)
    subprocess.run(["usermod", "-aG", "inklhaaso", "carol"], check=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, site_setup, dev_slurm):
    from .harness import Hub

    h = Hub(tmp_path_factory.mktemp("profiles"), SLURM_HUB_CONFIG + 'c.Authenticator.admin_users = {"dave"}\n',
            backend="slurm", catalogue=CATALOGUE).start()
    assert h.api("POST", "/groups/juno", json={"users": ["alice"]}).status_code in (201, 409)
    yield h
    for user in ("alice", "bob", "carol", "dave"):
        for name in list(h.user_model(user).get("servers", {})):
            h.api("DELETE", f"/users/{user}/servers/{name}")
    h.stop()


def scontrol(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


def environ_of_job(job_id: str) -> dict:
    env = {}
    for pid in job_pids(job_id):
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                k, _, v = item.partition(b"=")
                env.setdefault(k.decode(), v.decode())
    return env


def test_member_gets_the_experiments_routing_setup_and_limits(hub):
    hub.start_and_wait("alice", "jupyter", {"cpus": 4})
    job_id = hub.spawner_state("alice", "jupyter")["job_id"]
    info = scontrol(job_id)
    assert "Account=juno" in info and "Partition=debug" in info and "NumCPUs=4" in info
    env = environ_of_job(job_id)
    assert env.get("INK_EXPERIMENT") == "juno"
    assert env.get("JUNO_TOP") == "/cvmfs/juno.ihep.ac.cn/sw", "the experiment's setup script ran"
    # the experiment's kernel is offered by the session, next to the default one
    token = hub.user_token("alice")
    specs = requests.get(f"{hub.url}/user/alice/jupyter/api/kernelspecs",
                         headers={"Authorization": f"token {token}"}, timeout=10).json()["kernelspecs"]
    assert specs["juno-py"]["spec"]["display_name"] == "JUNO Python"
    assert specs["juno-py"]["spec"]["env"] == {"JUNO_KERNEL": "1"} and "python3" in specs
    # one session per user on this site: a second app is refused, nothing submitted
    before = set(squeue_active("alice"))
    r = hub.request_server("alice", "second")
    assert r.status_code == 400 and "sessions" in r.json()["message"]
    assert set(squeue_active("alice")) == before
    # an admin sees and stops everyone's sessions; another user cannot
    bob_token = hub.user_token("bob")
    r = requests.delete(f"{hub.api_url}/users/alice/servers/jupyter",
                        headers={"Authorization": f"token {bob_token}"}, timeout=10)
    assert r.status_code in (403, 404)
    dave_token = hub.user_token("dave")
    r = requests.get(f"{hub.api_url}/users/alice", headers={"Authorization": f"token {dave_token}"}, timeout=10)
    assert r.status_code == 200 and "jupyter" in r.json()["servers"]
    r = requests.delete(f"{hub.api_url}/users/alice/servers/jupyter",
                        headers={"Authorization": f"token {dave_token}"}, timeout=30)
    assert r.status_code in (202, 204)
    hub.wait_stopped("alice", "jupyter")
    assert job_id not in squeue_active("alice")


@pytest.mark.parametrize("options, field", [
    ({"experiment": "besiii"}, "experiment"),  # not a member
    ({"experiment": "cms"}, "experiment"),  # unknown
    ({"experiment": "juno; scancel -u bob"}, "experiment"),
    ({"image": "alma9"}, "image"),  # JUNO offers no image
    ({"cpus": 5}, "cpus"),  # above JUNO's limit
    ({"cpus": "2"}, "cpus"),  # wrong type
    ({"cpus": True}, "cpus"),
    ({"gpus": 1}, "gpus"),
    ({"memory": "1G --uid=0"}, "memory"),
    ({"memory": 1024}, "memory"),
    ({"walltime": "99:00:00"}, "walltime"),
    ({"walltime": "1:00:00\n#SBATCH --uid=0"}, "walltime"),
    ({"partition": "gpu"}, "partition"),  # routing is the catalogue's, not the user's
    ({"image": "../../etc/passwd"}, "image"),
])
def test_spawns_outside_the_profile_are_refused_and_submit_nothing(hub, options, field):
    before = set(squeue_active())
    r = hub.request_server("alice", "jupyter", options)
    assert r.status_code == 400, (options, r.status_code, r.text)
    assert r.json()["message"].startswith(f"{field}:"), r.json()
    assert set(squeue_active()) == before
    assert hub.server("alice", "jupyter") is None


def test_user_without_an_experiment_is_told_so(hub):
    r = hub.request_server("dave", "jupyter", {})
    assert r.status_code == 400 and "not a member of any experiment" in r.json()["message"]


def test_unix_group_membership_and_a_personal_override(hub):
    hub.start_and_wait("carol", "jupyter", {"cpus": 8})  # LHAASO allows 2; carol's slot allows 16
    job_id = hub.spawner_state("carol", "jupyter")["job_id"]
    assert "NumCPUs=8" in scontrol(job_id)
    assert environ_of_job(job_id).get("INK_EXPERIMENT") == "lhaaso"
    hub.stop_server("carol", "jupyter")


def test_image_runs_the_session_inside_apptainer(hub):
    """BESIII sessions run in their OS image. Apptainer is not installed on the CI machine, so
    the job fails, and the spawn says why with the job's own output."""
    r = hub.request_server("bob", "jupyter", {})
    if r.status_code == 202:
        message = hub.progress("bob", "jupyter")[-1]["message"]
    else:
        assert r.status_code == 500, r.text
        message = r.json()["message"]
    assert "apptainer" in message and "ended before" in message
    assert not squeue_active("bob")


def test_an_app_can_run_on_its_own_backend(hub_factory, dev_slurm):
    """A lightweight app (the future portal server) on `local` while sessions go to Slurm."""
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", catalogue="""
defaults: {memory: 1G}
apps:
  portal: {title: Portal, default_url: /lab, backend: local}
experiments:
  default: {title: Everyone, members: {everyone: true}, apps: [jupyter, portal]}
""")
    for name in ("jupyter", "portal"):
        assert hub.request_server("erin", name).status_code in (201, 202)
    for name in ("jupyter", "portal"):
        hub.wait_ready("erin", name)
    slurm_job = hub.spawner_state("erin", "jupyter")
    local_job = hub.spawner_state("erin", "portal")
    assert slurm_job["backend"] == "slurm" and slurm_job["job_id"] in squeue_active("erin")
    assert local_job["backend"] == "local" and "." in local_job["job_id"]  # pid.starttime
    assert local_job["job_id"] not in squeue_active("erin")
    for name in ("jupyter", "portal"):
        hub.stop_server("erin", name)
    assert not squeue_active("erin")


def test_portal_stops_itself_when_idle(hub_factory, unix_users):
    """An app with an idle timeout (the portal) ends on its own; the hub notices and cleans up.
    jupyter-server checks for inactivity once a minute, so this takes about a minute."""
    hub = hub_factory("c.LocalBackend.poll_interval = 1\nc.InkSpawner.poll_interval = 1\n", catalogue="""
apps:
  portal: {title: Portal, default_url: /ink/shell, backend: local, form: false, idle_timeout: "0:01:00"}
experiments:
  default: {title: Everyone, members: {everyone: true}, apps: [jupyter, portal]}
""")
    hub.start_and_wait("bob", "portal")
    output = hub.spawner_state("bob", "portal")["job_output"]
    started = time.monotonic()
    hub.wait_stopped("bob", "portal", timeout=150)
    assert time.monotonic() - started >= 55  # not before the timeout
    text = open(output).read()
    assert "stops after 60 s without activity" in text and "shutting down" in text
