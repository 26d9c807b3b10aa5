"""The spawn path end to end: real JupyterHub + configurable-http-proxy + real Slurm."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import time

import pytest
import requests

from .conftest import SLURM_HUB_CONFIG, job_pids, scaled, squeue_active, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.hub]


def proxied_status(hub, user, name, token):
    return requests.get(f"{hub.url}/user/{user}/{name}/api/status",
                        headers={"Authorization": f"token {token}"}, timeout=10)


def test_start_poll_stop_through_the_proxy(slurm_hub):
    hub = slurm_hub
    server = hub.start_and_wait("alice", "jupyter")
    state = hub.spawner_state("alice", "jupyter")
    job_id = state["job_id"]
    assert squeue_active("alice").get(job_id) == "RUNNING"
    # the session runs as alice on the node and answers through the hub's proxy
    token = hub.user_token("alice")
    r = proxied_status(hub, "alice", "jupyter", token)
    assert r.status_code == 200 and "last_activity" in r.json()
    assert job_pids(job_id)
    assert server["url"] == "/user/alice/jupyter/"
    # lands on JupyterLab
    r = requests.get(f"{hub.url}/user/alice/jupyter/", headers={"Authorization": f"token {token}"},
                     allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["Location"].split("?")[0].endswith("/user/alice/jupyter/lab")
    hub.stop_server("alice", "jupyter")
    assert job_id not in squeue_active("alice")
    wait_for(lambda: not job_pids(job_id), 15, message="job processes gone")


def test_session_processes_belong_to_the_user(slurm_hub):
    import pwd

    hub = slurm_hub
    hub.start_and_wait("bob", "jupyter")
    job_id = hub.spawner_state("bob", "jupyter")["job_id"]
    bob = pwd.getpwnam("bob").pw_uid
    pids = job_pids(job_id)
    assert pids, "scontrol listpids found no process of the job"
    assert {os.stat(f"/proc/{p}").st_uid for p in pids} == {bob}
    # the output file is private to bob
    output = hub.spawner_state("bob", "jupyter")["job_output"]
    assert os.stat(os.path.dirname(output)).st_mode & 0o077 == 0
    assert os.stat(output).st_uid == bob
    hub.stop_server("bob", "jupyter")


def test_two_named_servers_at_once(slurm_hub):
    hub = slurm_hub
    for name in ("jupyter", "second"):
        r = hub.request_server("carol", name)
        assert r.status_code in (201, 202), r.text
    for name in ("jupyter", "second"):
        hub.wait_ready("carol", name)
    jobs = {name: hub.spawner_state("carol", name)["job_id"] for name in ("jupyter", "second")}
    assert len(set(jobs.values())) == 2
    token = hub.user_token("carol")
    for name in jobs:
        assert proxied_status(hub, "carol", name, token).status_code == 200
    for name in jobs:
        hub.stop_server("carol", name)
    assert not set(jobs.values()) & set(squeue_active("carol"))


def test_progress_reports_submission_node_and_ready(slurm_hub):
    hub = slurm_hub
    r = hub.request_server("dave", "jupyter")
    assert r.status_code in (201, 202)
    if r.status_code == 202:
        events = hub.progress("dave", "jupyter")
    else:  # already done: the progress stream replays the final event only
        events = []
    hub.wait_ready("dave", "jupyter")
    job_id = hub.spawner_state("dave", "jupyter")["job_id"]
    log = hub.log_text()
    assert f"Submitted slurm job {job_id}" in log
    assert f"Job {job_id} is running on" in log
    assert "JupyterLab is up on" in log
    if events:
        assert events[-1].get("ready") is True
    hub.stop_server("dave", "jupyter")


def test_scancel_is_noticed_within_one_poll_interval(slurm_hub):
    hub = slurm_hub
    hub.start_and_wait("erin", "jupyter")
    job_id = hub.spawner_state("erin", "jupyter")["job_id"]
    subprocess.run(["scancel", job_id], check=True)
    waited = hub.wait_stopped("erin", "jupyter", timeout=30)
    interval = 2.0  # c.SlurmBackend.poll_interval in SLURM_HUB_CONFIG
    # one interval (+10 % jitter) and the hub's own reaction, stretched on a loaded machine;
    # a spawner that waited for its own poll_interval or a second query would still pass only
    # on an idle box, and one that never noticed fails at the wait's deadline
    assert waited <= interval * 1.1 + scaled(1.0), f"noticed after {waited:.1f}s, interval {interval}s"


def test_bad_options_are_rejected_and_nothing_is_submitted(slurm_hub):
    hub = slurm_hub
    before = set(squeue_active())
    cases = [
        ({"cpus": 1000}, "cpus"),
        ({"cpus": "two"}, "cpus"),
        ({"memory": "lots"}, "memory"),
        ({"memory": "999G"}, "memory"),
        ({"walltime": "1000:00:00"}, "walltime"),
        ({"partition": "debug"}, "partition"),
        ({"cpus": "\u00b2"}, "cpus"),  # superscript two: str.isdigit() says yes, int() says no
        ({"cpus": "\uff13"}, "cpus"),  # fullwidth three
        ({"memory": "9" * 400}, "memory"),  # would overflow a float
        ({"walltime": "\u0661:00:00"}, "walltime"),  # Arabic-Indic digit
    ]
    for options, field in cases:
        r = hub.request_server("alice", "jupyter", options)
        assert r.status_code == 400, (options, r.status_code, r.text)
        assert field in r.json()["message"], r.json()
        assert hub.server("alice", "jupyter") is None
    # a hub user named after a system account never gets a session as that account
    for system_user in ("root", "daemon"):
        r = hub.request_server(system_user, "jupyter")
        assert r.status_code == 403 and "system account" in r.json()["message"], r.text
        hub.api("DELETE", f"/users/{system_user}")
    r = hub.request_server("alice", "nosuchapp")
    assert r.status_code == 400 and "nosuchapp" in r.json()["message"]
    assert set(squeue_active()) == before
    # JupyterHub remembers the last options; a valid request replaces them
    hub.start_and_wait("alice", "jupyter", {"cpus": 2, "memory": "2G", "walltime": "1:00:00"})
    job_id = hub.spawner_state("alice", "jupyter")["job_id"]
    out = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    assert "NumCPUs=2" in out and "TimeLimit=01:00:00" in out and "MinMemoryNode=2G" in out, out
    hub.stop_server("alice", "jupyter")


def test_port_callback_accepts_only_a_port_from_the_servers_own_token(slurm_hub):
    hub = slurm_hub
    hub.start_and_wait("alice", "jupyter")
    state = hub.spawner_state("alice", "jupyter")
    pids = job_pids(state["job_id"])
    environ = {}
    for pid in pids:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                key, _, value = item.partition(b"=")
                environ[key.decode()] = value.decode()
        if "JUPYTERHUB_API_TOKEN" in environ:
            break
    server_token = environ["JUPYTERHUB_API_TOKEN"]
    url = f"{hub.api_url}/ink/session-port"
    as_server = {"Authorization": f"token {server_token}"}
    before = hub.server("alice", "jupyter")["url"]

    assert requests.post(url, json={"port": 1234}, timeout=10).status_code == 403  # no token
    r = requests.post(url, json={"port": 1234, "host": "evil.example"}, headers=as_server, timeout=10)
    assert r.status_code == 400 and "host" in r.json()["message"]
    for body in ({"port": "1234"}, {"port": 0}, {"port": 70000}, {"port": True}, [1234], {}):
        assert requests.post(url, json=body, headers=as_server, timeout=10).status_code == 400, body
    assert requests.post(url, data=b"not json", headers=as_server, timeout=10).status_code == 400
    # a user's own API token is not a server token
    user_token = hub.user_token("alice")
    r = requests.post(url, json={"port": 1234}, headers={"Authorization": f"token {user_token}"}, timeout=10)
    assert r.status_code == 403
    # a valid report for a server that is not starting changes nothing
    r = requests.post(url, json={"port": 1234}, headers=as_server, timeout=10)
    assert r.status_code == 409
    # the same port again (a job retrying a report whose answer it did not get) is no error
    r = requests.post(url, json={"port": state["port"]}, headers=as_server, timeout=10)
    assert r.status_code == 200, r.text
    assert hub.server("alice", "jupyter")["url"] == before
    assert hub.spawner_state("alice", "jupyter")["port"] == state["port"]

    # alice's server token cannot report for bob's server while bob's is starting
    import threading

    spawn = threading.Thread(target=hub.request_server, args=("bob", "jupyter"))
    spawn.start()
    wait_for(lambda: (hub.server("bob", "jupyter") or {}).get("pending") == "spawn", 10, 0.02,
             "bob's spawn pending")
    r = requests.post(url, json={"port": 1234}, headers=as_server, timeout=10)
    assert r.status_code == 409  # matched alice's own running server, never bob's
    spawn.join()
    hub.wait_ready("bob", "jupyter")
    assert hub.spawner_state("bob", "jupyter")["port"] != 1234
    hub.stop_server("bob", "jupyter")
    hub.stop_server("alice", "jupyter")


def test_five_concurrent_sessions_all_become_ready(slurm_hub):
    hub = slurm_hub
    users = ["alice", "bob", "carol", "dave", "erin"]
    t0 = time.monotonic()
    for user in users:
        r = hub.request_server(user, "jupyter")
        assert r.status_code in (201, 202), r.text
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda u: hub.wait_ready(u, "jupyter", 120), users))
    elapsed = time.monotonic() - t0
    jobs = {hub.spawner_state(u, "jupyter")["job_id"] for u in users}
    assert len(jobs) == 5 and jobs <= set(squeue_active())
    print(f"5 concurrent sessions ready in {elapsed:.1f}s")
    for user in users:
        hub.api("DELETE", f"/users/{user}/servers/jupyter")
    for user in users:
        hub.wait_stopped(user, "jupyter")
    assert not jobs & set(squeue_active())


def test_spawn_timeout_leaves_no_job(hub_factory, dev_slurm):
    hub = hub_factory(SLURM_HUB_CONFIG + """
c.SlurmBackend.extra_sbatch_args = ["--begin=now+3600"]
c.InkSpawner.start_timeout = 4
""", backend="slurm")
    r = hub.request_server("alice", "jupyter")
    assert r.status_code in (202, 500), r.text
    events = hub.progress("alice", "jupyter", timeout=30) if r.status_code == 202 else []
    wait_for(lambda: hub.server("alice", "jupyter") is None, 30, message="failed spawn cleaned up")
    assert not squeue_active("alice"), squeue_active("alice")
    log = hub.log_text()
    job_line = [line for line in log.splitlines() if "Submitted slurm job" in line]
    assert job_line, "the job was never submitted"
    assert "reason: BeginTime" in log  # progress told the user why it waits
    assert any("queued" in e.get("message", "") for e in events) or not events


def test_job_that_dies_fails_the_spawn_with_its_output(hub_factory, dev_slurm):
    hub = hub_factory(SLURM_HUB_CONFIG + """
c.InkSpawner.cmd = ["/bin/sh", "-c", "echo 'ImportError: no module named physics' >&2; exit 3"]
""", backend="slurm")
    t0 = time.monotonic()
    r = hub.request_server("alice", "jupyter")
    if r.status_code == 202:
        events = hub.progress("alice", "jupyter")
        message = events[-1]["message"]
        assert events[-1].get("failed")
    else:
        assert r.status_code == 500, r.text
        message = r.json()["message"]
    # start_timeout is 600 s: a dead job must fail the spawn at once, not at the time-out
    assert time.monotonic() - t0 < scaled(15), "a dead job must fail the spawn at once, not at the timeout"
    assert "ImportError: no module named physics" in message
    assert "ended before" in message
    assert not squeue_active("alice")


def test_hub_restart_keeps_sessions(hub_factory, dev_slurm, tmp_path):
    workdir = tmp_path / "restart"
    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm", workdir=workdir)
    for user in ("alice", "bob"):
        hub.start_and_wait(user, "jupyter")
    jobs = {u: hub.spawner_state(u, "jupyter")["job_id"] for u in ("alice", "bob")}
    token = hub.user_token("alice")
    hub.stop()
    assert set(jobs.values()) <= set(squeue_active()), "sessions must survive the hub going away"
    hub.start()
    for user, job_id in jobs.items():
        server = hub.server(user, "jupyter")
        assert server and server["ready"], server
        assert hub.spawner_state(user, "jupyter")["job_id"] == job_id
    assert proxied_status(hub, "alice", "jupyter", token).status_code == 200
    # one status query re-attached both, and a later kill is still noticed
    subprocess.run(["scancel", jobs["bob"]], check=True)
    hub.wait_stopped("bob", "jupyter", timeout=15)
    hub.stop_server("alice", "jupyter")
    assert not set(jobs.values()) & set(squeue_active())


@pytest.fixture
def unreachable_slurm_conf():
    """A real slurm.conf whose controller port has nothing listening: sbatch/squeue fail as they
    do when slurmctld is down, without stopping the shared dev cluster."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="ink-dead-slurm-")
    os.chmod(d, 0o755)
    conf = open("/etc/slurm/slurm.conf").read().replace("SlurmctldHost=", "SlurmctldPort=9\nSlurmctldHost=", 1)
    with open(f"{d}/slurm.conf", "w") as f:
        f.write(conf)
    for tool in ("sbatch", "squeue"):
        path = f"{d}/{tool}"
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nSLURM_CONF={d}/slurm.conf exec /usr/bin/{tool} \"$@\"\n")
        os.chmod(path, 0o755)
    os.chmod(f"{d}/slurm.conf", 0o644)
    yield d
    shutil.rmtree(d)


def test_hub_killed_mid_spawn_leaves_no_job(hub_factory, dev_slurm, tmp_path):
    """The job id is saved at submission, so a hub that dies before the port report does not
    forget the queued job: the restarted hub cancels it."""
    import signal

    config = SLURM_HUB_CONFIG + """
c.SlurmBackend.extra_sbatch_args = ["--begin=now+3600"]
"""
    hub = hub_factory(config, backend="slurm", workdir=tmp_path / "killed")
    r = hub.request_server("alice", "jupyter")
    assert r.status_code == 202, r.text
    # the state, not a pause: the hub has saved the job id before it dies (and the id is this
    # spawn's, not another alice job of a concurrent test run)
    job_id = wait_for(lambda: hub.spawner_state("alice", "jupyter").get("job_id"), 15,
                      message="job id saved in the spawner state")
    assert job_id in squeue_active("alice"), "the job is queued"
    os.killpg(hub.proc.pid, signal.SIGKILL)  # hub and proxy die without any clean-up
    hub.proc.wait()
    hub.proc = None
    assert job_id in squeue_active("alice")
    hub.start()
    wait_for(lambda: job_id not in squeue_active("alice"), 20, message="orphan cancelled")
    assert hub.server("alice", "jupyter") is None


def test_scheduler_down_gives_a_clear_error(hub_factory, dev_slurm, unreachable_slurm_conf):
    d = unreachable_slurm_conf
    hub = hub_factory(SLURM_HUB_CONFIG + f"""
c.SlurmBackend.sbatch = "{d}/sbatch"
c.SlurmBackend.command_timeout = 30
""", backend="slurm")
    t0 = time.monotonic()
    r = hub.request_server("alice", "jupyter")
    assert r.status_code == 503, r.text
    assert "Slurm controller is not reachable" in r.json()["message"]
    # the message above is the refused connection's, not the 30 s command_timeout's; the bound
    # only catches a hub that hangs far beyond (sbatch's own retries take about 20 s)
    assert time.monotonic() - t0 < scaled(25)
    assert hub.server("alice", "jupyter") is None


def test_scheduler_that_hangs_is_cut_off_with_a_message(hub_factory, dev_slurm, unreachable_slurm_conf):
    d = unreachable_slurm_conf
    hub = hub_factory(SLURM_HUB_CONFIG + f"""
c.SlurmBackend.sbatch = "{d}/sbatch"
c.SlurmBackend.command_timeout = 2
""", backend="slurm")
    t0 = time.monotonic()
    r = hub.request_server("alice", "jupyter")
    assert r.status_code == 503, r.text
    assert "did not answer within 2 s" in r.json()["message"]
    # cut off at command_timeout (2 s), not left hanging: an unscaled 2 s plus the hub's work
    assert time.monotonic() - t0 < 2 + scaled(6)


def test_missing_scheduler_command_is_named(hub_factory, dev_slurm):
    hub = hub_factory(SLURM_HUB_CONFIG + """
c.SlurmBackend.sbatch = "/opt/nowhere/sbatch"
""", backend="slurm")
    r = hub.request_server("alice", "jupyter")
    assert r.status_code == 503, r.text
    assert "/opt/nowhere/sbatch" in r.json()["message"]


def _culler_processes(hub_pid: int) -> list[list[str]]:
    """The command lines of jupyterhub-idle-culler processes started by this hub."""
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = [c.decode() for c in f.read().split(b"\0") if c]
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if "jupyterhub_idle_culler" in cmd and ppid == hub_pid:
                found.append(cmd)
    return found


def test_idle_culler_stops_an_idle_session_and_its_job_leaves_the_queue(hub_factory, dev_slurm):
    """site.idle_culler: the real jupyterhub-idle-culler (PyPI), run by the hub as a managed
    service with only its four scopes, stops an idle Slurm session; its job leaves the queue."""
    from .harness import TEST_CATALOGUE

    hub = hub_factory(SLURM_HUB_CONFIG, backend="slurm",
                      catalogue=TEST_CATALOGUE + "site: {idle_culler: {timeout: 20, every: 5}}\n")
    culler = wait_for(lambda: _culler_processes(hub.proc.pid), 30, 0.5, "the culler service running")
    assert "--timeout=20" in culler[0] and "--cull-every=5" in culler[0]
    hub.start_and_wait("dave", "jupyter")
    job_id = hub.spawner_state("dave", "jupyter")["job_id"]
    assert job_id in squeue_active("dave")
    started = time.monotonic()

    def culled():
        server = hub.server("dave", "jupyter")
        return not server and job_id not in squeue_active("dave")

    # idle for 20 s, noticed within one 5 s round, stopped within the spawner's stop timeout
    wait_for(culled, 120, 1, "the idle session culled and its job gone")
    assert time.monotonic() - started >= 15, "culled before it had been idle for the timeout"
    assert "Culling server dave/jupyter" in hub.log_text() or "Culling server dave" in hub.log_text()
