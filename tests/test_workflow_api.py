"""The workflow API and the `ink` CLI against a real hub + proxy + Slurm, with real tokens.

A token created on the hub (REST API, as the token page does) carries INK's scopes; the `ink`
console script talks to the hub with it, the portal server starts on demand, and the job runs
on Slurm as the user. Scopes, expiry and revocation are checked by the real hub.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import SLURM_HUB_CONFIG, cancel_test_jobs, squeue_active, wait_for
from .harness import Hub

pytestmark = [pytest.mark.slurm, pytest.mark.hub]

INK = str(Path(sys.prefix) / "bin" / "ink")

CATALOGUE = """
defaults: {memory: 1G, walltime: "1:00:00"}
limits: {cpus: 2, memory: 4G, walltime: "2:00:00"}
images:
  el9: {title: EL9, path: /opt/images/el9.sif}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter, portal]
  juno:
    title: JUNO
    members: {users: [alice]}
    apps: [portal]
    images: [el9]
    default_image: el9
    limits: {cpus: 1}
"""

FULL = ["access:servers!user", "read:users:name!user", "servers!user", "read:servers!user",
        "custom:ink:jobs!user"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users, dev_slurm):
    hub = Hub(tmp_path_factory.mktemp("workflow-hub"), SLURM_HUB_CONFIG, backend="slurm",
              catalogue=CATALOGUE).start()
    yield hub
    for user in ("alice", "bob"):
        for name in list(hub.user_model(user).get("servers", {})):
            hub.api("DELETE", f"/users/{user}/servers/{name}")
    hub.stop()
    cancel_test_jobs()


def token(hub: Hub, user: str, scopes: list[str] | None = None, expires_in: int = 3600) -> str:
    hub.api("POST", f"/users/{user}")
    body = {"note": "workflow test", "expires_in": expires_in}
    if scopes is not None:
        body["scopes"] = [s.replace("!user", f"!user={user}") if s.endswith("!user") else s for s in scopes]
    r = hub.api("POST", f"/users/{user}/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def api(hub: Hub, user: str, tok: str, method: str, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", 60)
    return requests.request(method, f"{hub.url}/user/{user}/portal/ink/api/v1{path}",
                            headers={"Authorization": f"token {tok}"}, **kwargs)


def ink(tmp_path: Path, *args: str, check: bool = False, stdin: str | None = None, timeout=300):
    env = {"PATH": os.environ["PATH"], "INK_CONFIG": str(tmp_path / "ink" / "config.json"),
           "HOME": str(tmp_path)}
    r = subprocess.run([INK, *args], capture_output=True, text=True, env=env, input=stdin,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"ink {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def portal(hub):
    """alice's portal server, running (most tests need it; the CLI test starts it itself)."""
    server = hub.server("alice", "portal")
    if not (server and server.get("ready")):
        hub.start_and_wait("alice", "portal")
    return hub


def workflow_jobs_in_slurm(user: str) -> set[str]:
    """Ids of the user's workflow jobs Slurm knows (other test runs share the dev Slurm and the
    test users, so count only jobs tagged ink=workflow)."""
    out = subprocess.run(["squeue", "--noheader", "--states=all", f"--user={user}", "--format=%i|%k"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split("|")[0] for line in out.splitlines() if "ink=workflow" in line}


def wait_final(hub, user, tok, job_id, timeout=60) -> dict:
    def final():
        job = api(hub, user, tok, "GET", f"/jobs/{job_id}").json()
        return job if job["state"] in ("completed", "failed", "cancelled") else None
    return wait_for(final, timeout=timeout, interval=0.3, message=f"job {job_id} ended")


def test_cli_job_runs_as_user_and_output_comes_back(hub, tmp_path):
    """`ink login`, then a job submitted with `ink` starts the portal on demand, runs on Slurm as
    alice, and its stdout, stderr and exit status come back through the CLI."""
    if hub.server("alice", "portal"):
        hub.stop_server("alice", "portal")
    tok = token(hub, "alice")  # a token as the token page makes it: all of alice's permissions
    login = ink(tmp_path, "login", "--hub", hub.url, "--token", tok, check=True)
    assert "as alice" in login.stdout and "custom:ink:jobs" in login.stdout
    config = tmp_path / "ink" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700

    run = ink(tmp_path, "jobs", "submit", "--name", "hello", "--follow", "--",
              "sh", "-c", 'id -un; echo "job $INK_JOB_ID"; echo to-stderr >&2', check=True)
    lines = run.stdout.splitlines()
    assert lines[0] == "alice"
    job_id = run.stderr.splitlines()[0].strip()
    assert lines[1] == f"job {job_id}"
    assert hub.server("alice", "portal")["ready"], "the portal was started on demand"

    shown = json.loads(ink(tmp_path, "jobs", "show", job_id, "--json", check=True).stdout)
    assert shown["state"] == "completed" and shown["exit_code"] == 0 and shown["backend"] == "slurm"
    assert shown["name"] == "hello" and shown["node"]
    by_slurm_id = json.loads(ink(tmp_path, "jobs", "show", shown["backend_id"], "--json", check=True).stdout)
    assert by_slurm_id["id"] == job_id
    assert ink(tmp_path, "jobs", "logs", job_id, "--stderr", check=True).stdout == "to-stderr\n"
    # the output file was written by the job, as alice, in her home
    out = Path(shown["stdout_path"])
    assert out.is_relative_to(pwd.getpwnam("alice").pw_dir)
    assert pwd.getpwuid(out.stat().st_uid).pw_name == "alice"

    listed = json.loads(ink(tmp_path, "jobs", "ls", "--json", check=True).stdout)["jobs"]
    assert job_id in [j["id"] for j in listed]

    failing = ink(tmp_path, "jobs", "submit", "--wait", "--json", "--", "sh", "-c", "exit 7")
    assert failing.returncode == 1, failing.stderr
    assert json.loads(failing.stdout)["exit_code"] == 7
    assert json.loads(failing.stdout)["state"] == "failed"

    refused = ink(tmp_path, "jobs", "submit", "--cpus", "64", "--", "true")
    assert refused.returncode == 6 and "cpus" in refused.stderr

    script = "#!/bin/bash\necho \"script sees $GREETING from $(pwd)\"\n"
    run = ink(tmp_path, "jobs", "submit", "--script", "-", "--env", "GREETING=hi", "--workdir", "/tmp",
              "--follow", stdin=script, check=True)
    assert run.stdout == "script sees hi from /tmp\n"
    assert ink(tmp_path, "logout", check=True).returncode == 0
    assert ink(tmp_path, "jobs", "ls").returncode == 3


def test_least_privilege_token_of_the_guide(hub, tmp_path):
    """The token the user guide suggests for a jobs workflow is enough: it starts the portal
    on demand and submits, and nothing more (no sessions, no files scope)."""
    if hub.server("alice", "portal"):
        hub.stop_server("alice", "portal")
    tok = token(hub, "alice", ["access:servers!server=alice/portal", "servers!server=alice/portal",
                               "read:servers!server=alice/portal", "custom:ink:jobs!user"])
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "INK_HUB_URL": hub.url, "INK_TOKEN": tok}
    r = subprocess.run([INK, "jobs", "submit", "--follow", "--", "echo", "least"], capture_output=True,
                       text=True, env=env, timeout=300)
    assert (r.returncode, r.stdout) == (0, "least\n"), r.stderr
    r = subprocess.run([INK, "sessions", "start", "jupyter"], capture_output=True, text=True, env=env,
                       timeout=60)
    # the token may start only the portal (the hub answers 404, not to reveal other servers)
    assert r.returncode == 5 and "No access" in r.stderr, r.stderr


def test_token_without_scope_is_403_expired_and_revoked_are_401(portal):
    hub = portal
    no_ink = token(hub, "alice", ["access:servers!user", "read:users:name!user"])
    r = api(hub, "alice", no_ink, "GET", "/jobs")
    assert r.status_code == 403 and "custom:ink:jobs:read" in r.json()["message"]
    read_only = token(hub, "alice", ["access:servers!user", "custom:ink:jobs:read!user"])
    assert api(hub, "alice", read_only, "GET", "/jobs").status_code == 200
    r = api(hub, "alice", read_only, "POST", "/jobs", json={"command": ["true"]})
    assert r.status_code == 403 and "custom:ink:jobs" in r.json()["message"]

    expiring = token(hub, "alice", FULL, expires_in=2)
    assert api(hub, "alice", expiring, "GET", "/jobs").status_code == 200
    time.sleep(3)
    r = api(hub, "alice", expiring, "GET", "/jobs")
    assert r.status_code == 401 and r.json()["message"] == "the token is invalid, expired or revoked"

    revoked = token(hub, "alice", FULL)
    assert api(hub, "alice", revoked, "GET", "/jobs").status_code == 200  # now in the server's cache
    tokens = hub.api("GET", "/users/alice/tokens").json()["api_tokens"]
    (model,) = [t for t in tokens if t["id"] == _token_id(hub, revoked)]
    assert hub.api("DELETE", f"/users/alice/tokens/{model['id']}").status_code == 204
    assert api(hub, "alice", revoked, "POST", "/jobs", json={"command": ["true"]}).status_code == 401
    assert api(hub, "alice", revoked, "GET", "/jobs").status_code == 401

    assert api(hub, "alice", "not-a-token", "GET", "/jobs").status_code == 401
    r = requests.get(f"{hub.url}/user/alice/portal/ink/api/v1/jobs", timeout=30)
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/json")


def _token_id(hub: Hub, tok: str) -> str:
    r = requests.get(f"{hub.api_url}/user", headers={"Authorization": f"token {tok}"}, timeout=30)
    return r.json()["token_id"]


def test_other_users_token_is_refused(portal):
    hub = portal
    bobs = token(hub, "bob")
    r = api(hub, "alice", bobs, "GET", "/jobs")
    assert r.status_code == 403
    r = api(hub, "alice", bobs, "POST", "/jobs", json={"command": ["id"]})
    assert r.status_code == 403


@pytest.mark.parametrize("body, field", [
    ({"command": ["true"], "cpus": 3}, "cpus"),
    ({"command": ["true"], "memory": "8G"}, "memory"),
    ({"command": ["true"], "walltime": "3:00:00"}, "walltime"),
    ({"command": ["true"], "gpus": 1}, "gpus"),
    ({"command": ["true"], "experiment": "atlas"}, "experiment"),
    ({"command": ["true"], "experiment": "juno", "cpus": 2}, "cpus"),
    ({"command": ["true"], "experiment": "juno", "image": "el7"}, "image"),
    ({"command": ["true"], "name": "Bad Name"}, "name"),
    ({"command": ["true"], "partition": "gpu"}, "partition"),
    ({"command": ["true"], "script": "echo"}, "command"),
    ({"command": []}, "command"),
    ({"command": "echo hi"}, "command"),
    ({"command": ["true"], "env": {"INK_JOB_ID": "x"}}, "env"),
    ({"command": ["true"], "workdir": "/nonexistent"}, "workdir"),
    ([1, 2], "body"),
])
def test_job_outside_profile_is_refused_with_400(portal, body, field):
    hub = portal
    tok = token(hub, "alice", FULL)
    before = workflow_jobs_in_slurm("alice")
    jobs_before = len(api(hub, "alice", tok, "GET", "/jobs").json()["jobs"])
    r = api(hub, "alice", tok, "POST", "/jobs", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"{field}:"), r.json()
    assert workflow_jobs_in_slurm("alice") <= before, "nothing was submitted"
    assert len(api(hub, "alice", tok, "GET", "/jobs").json()["jobs"]) == jobs_before


@pytest.mark.parametrize("options, message", [
    ({"cpus": 3}, "cpus: 3 is outside the allowed range 1-2"),
    ({"memory": "5G"}, "memory: 5G is more than your limit 4G"),
    ({"walltime": "3:00:00"}, "walltime: 3:00:00 is more than your limit 2:00:00"),
    ({"experiment": "atlas"}, "experiment: unknown experiment 'atlas' (yours: default, juno)"),
    ({"image": "el7"}, "image: 'el7' is not offered by 'default' (offered: none)"),
    ({"gpus": "1"}, "gpus: must be an integer"),
])
def test_a_session_and_a_job_are_refused_by_the_same_validator(portal, options, message):
    """One validator: the same request outside the profile gets the same 400 from the hub's
    spawn API and from the portal's job API, and neither submits anything."""
    hub = portal
    tok = token(hub, "alice", FULL)
    before = set(squeue_active("alice"))
    session = hub.request_server("alice", "jupyter", options)
    job = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["true"], **options})
    assert (session.status_code, job.status_code) == (400, 400), (session.text, job.text)
    assert session.json()["message"] == job.json()["message"] == message
    assert hub.server("alice", "jupyter") is None
    assert set(squeue_active("alice")) <= before


def test_malformed_json_is_400(portal):
    tok = token(portal, "alice", FULL)
    r = requests.post(f"{portal.url}/user/alice/portal/ink/api/v1/jobs", data=b"{not json",
                      headers={"Authorization": f"token {tok}"}, timeout=30)
    assert r.status_code == 400 and r.json()["message"] == "body: must be a JSON object"


def test_cancel_a_running_job(portal):
    hub = portal
    tok = token(hub, "alice", FULL)
    job = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["sleep", "300"], "name": "sleeper"}).json()
    wait_for(lambda: api(hub, "alice", tok, "GET", f"/jobs/{job['id']}").json()["state"] == "running",
             timeout=30, message="job running")
    assert job["backend_id"] in squeue_active("alice")
    r = api(hub, "alice", tok, "DELETE", f"/jobs/{job['id']}")
    assert r.status_code == 202 and r.json()["state"] == "cancelled", r.text
    wait_for(lambda: job["backend_id"] not in squeue_active("alice"), timeout=30, message="job gone")
    r = api(hub, "alice", tok, "DELETE", f"/jobs/{job['id']}")
    assert r.status_code == 409 and "already ended" in r.json()["message"]
    assert api(hub, "alice", tok, "GET", "/jobs/000000000000").status_code == 404
    assert api(hub, "alice", tok, "DELETE", "/jobs/nope").status_code == 404
    # no way out of the job directory through an id, and output is never rendered as HTML
    for bad in ("..%2F..%2F.bashrc", "%2e%2e", ".ink", "..%2Fjobs"):
        r = api(hub, "alice", tok, "GET", f"/jobs/{bad}/stdout")
        assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json"), bad
    out = api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/stdout")
    assert out.headers["Content-Type"].startswith("text/plain")
    assert out.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in out.headers["Content-Security-Policy"]


def test_list_shows_only_workflow_jobs_of_the_user(portal, tmp_path):
    """A job alice submits with sbatch herself, and bob's jobs, are not INK workflow jobs."""
    hub = portal
    tok = token(hub, "alice", FULL)
    own = subprocess.run(["runuser", "-u", "alice", "--", "sbatch", "--parsable", "--wrap", "sleep 30",
                          "--output=/dev/null"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        api_job = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["true"]}).json()
        listed = api(hub, "alice", tok, "GET", "/jobs", params={"state": "all"}).json()["jobs"]
        assert api_job["id"] in {j["id"] for j in listed}
        assert own not in {j["backend_id"] for j in listed}
        wait_final(hub, "alice", tok, api_job["id"])
        ended = api(hub, "alice", tok, "GET", "/jobs", params={"state": "ended"}).json()["jobs"]
        assert api_job["id"] in {j["id"] for j in ended}
        active = api(hub, "alice", tok, "GET", "/jobs", params={"state": "active"}).json()["jobs"]
        assert api_job["id"] not in {j["id"] for j in active}
        assert api(hub, "alice", tok, "GET", "/jobs", params={"state": "bogus"}).status_code == 400
        assert api(hub, "alice", tok, "GET", "/jobs", params={"limit": "\u00b2"}).status_code == 400
        r = api(hub, "alice", tok, "GET", f"/jobs/{api_job['id']}/stdout", params={"offset": "\u0661"})
        assert r.status_code == 400 and r.json()["message"].startswith("offset:")
    finally:
        subprocess.run(["scancel", own])


def test_cli_sessions_start_ls_stop(hub, tmp_path):
    """`ink sessions`: a JupyterLab session on Slurm started, listed and stopped with a token."""
    tok = token(hub, "bob")
    ink(tmp_path, "login", "--hub", hub.url, "--token", tok, check=True)
    started = json.loads(ink(tmp_path, "sessions", "start", "jupyter", "--json", check=True).stdout)
    assert started["ready"] is True and started["app"] == "jupyter"
    assert hub.spawner_state("bob", "jupyter")["backend"] == "slurm"
    job_id = hub.spawner_state("bob", "jupyter")["job_id"]
    assert job_id in squeue_active("bob")
    listed = ink(tmp_path, "sessions", "ls", check=True).stdout
    assert "jupyter" in listed and "ready" in listed
    ink(tmp_path, "sessions", "stop", "jupyter", check=True)
    assert hub.server("bob", "jupyter") is None
    wait_for(lambda: job_id not in squeue_active("bob"), timeout=30, message="session job gone")
    assert ink(tmp_path, "sessions", "stop", "nosuchapp").returncode in (5, 6)
    refused = ink(tmp_path, "sessions", "start", "jupyter", "--cpus", "64")
    assert refused.returncode == 6 and "cpus" in refused.stderr
    assert hub.server("bob", "jupyter") is None


def test_cli_files_ls_get_put(portal, tmp_path):
    """`ink files` on the file manager's API (/ink/api/files, built separately): a multi-chunk
    upload lands intact, the listing shows it, a download resumes a partial file with Range."""
    hub = portal
    tok = token(hub, "alice")
    probe = requests.get(f"{hub.url}/user/alice/portal/ink/api/files/list", params={"path": "."},
                         headers={"Authorization": f"token {tok}"}, timeout=30)
    assert probe.status_code == 200, probe.text
    ink(tmp_path, "login", "--hub", hub.url, "--token", tok, check=True)
    data = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "payload.bin"
    local.write_bytes(data)
    name = f"ink-cli-test-{os.getpid()}.bin"
    home = Path(pwd.getpwnam("alice").pw_dir)
    try:
        env_chunk = dict(os.environ, INK_CHUNK_SIZE=str(1 << 20))
        r = subprocess.run([INK, "files", "put", str(local), name], capture_output=True, text=True,
                           env={**env_chunk, "INK_CONFIG": str(tmp_path / "ink" / "config.json")}, timeout=120)
        assert r.returncode == 0, r.stderr
        assert (home / name).read_bytes() == data
        assert pwd.getpwuid((home / name).stat().st_uid).pw_name == "alice"
        again = ink(tmp_path, "files", "put", str(local), name)
        assert again.returncode == 6, again.stderr  # exists: refused without --overwrite
        listing = json.loads(ink(tmp_path, "files", "ls", ".", "--json", check=True).stdout)
        (entry,) = [e for e in listing["entries"] if e["name"] == name]
        assert entry["size"] == len(data)
        # a partial download is continued with Range: the existing prefix is kept as it is
        out = tmp_path / "down.bin"
        (tmp_path / "down.bin.part").write_bytes(b"X" * 1000)
        ink(tmp_path, "files", "get", name, str(out), check=True)
        assert out.read_bytes() == b"X" * 1000 + data[1000:]
        out.unlink()
        ink(tmp_path, "files", "get", name, str(out), check=True)
        assert out.read_bytes() == data
        assert ink(tmp_path, "files", "get", "no-such-file", str(out)).returncode == 5
    finally:
        (home / name).unlink(missing_ok=True)


def test_job_environment_has_no_hub_secret(portal):
    """The portal holds the user's server token; a batch job never receives it."""
    hub = portal
    tok = token(hub, "alice", FULL)
    job = api(hub, "alice", tok, "POST", "/jobs", json={"command": ["env"], "env": {"MY_SETTING": "on"}}).json()
    wait_final(hub, "alice", tok, job["id"])
    env = api(hub, "alice", tok, "GET", f"/jobs/{job['id']}/stdout").text
    assert "MY_SETTING=on" in env and f"INK_JOB_ID={job['id']}" in env and "USER=alice" in env
    assert "JUPYTERHUB" not in env and "API_TOKEN" not in env and tok not in env


def test_jobs_on_the_local_backend(hub_factory):
    """The same API routes jobs to the hub's backend: here `local` (processes as the user)."""
    hub = hub_factory(backend="local", catalogue=CATALOGUE)
    hub.start_and_wait("carol", "portal")
    tok = token(hub, "carol", FULL)
    info = api(hub, "carol", tok, "GET", "/").json()
    assert info["profile"]["backend"] == "local" and info["user"] == "carol"
    job = api(hub, "carol", tok, "POST", "/jobs", json={"command": ["sh", "-c", "id -un; sleep 60"]}).json()
    assert job["backend"] == "local"
    wait_for(lambda: api(hub, "carol", tok, "GET", f"/jobs/{job['id']}/stdout").text == "carol\n",
             timeout=30, message="local job output")
    pid = int(job["backend_id"].split(".")[0])
    assert pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name == "carol"
    r = api(hub, "carol", tok, "DELETE", f"/jobs/{job['id']}")
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15, message="local job process gone")
    done = api(hub, "carol", tok, "POST", "/jobs", json={"command": ["sh", "-c", "exit 5"]}).json()
    final = wait_final(hub, "carol", tok, done["id"])
    assert (final["state"], final["exit_code"]) == ("failed", 5)
    hub.stop_server("carol", "portal")


def test_files_api_tokens_need_the_ink_files_scope(portal):
    """A token reaches the file manager's API only with INK's files scope: read for listing and
    downloads, write for changes; the owner's other tokens are refused there (403 naming it)."""
    hub = portal
    files = f"{hub.url}/user/alice/portal/ink/api/files/"
    access = "access:servers!server=alice/portal"
    reader = token(hub, "alice", [access, "custom:ink:files:read!user"])
    writer = token(hub, "alice", [access, "custom:ink:files!user"])
    jobs_only = token(hub, "alice", [access, "custom:ink:jobs!user"])
    name = f"ink-scope-test-{os.getpid()}"
    home = Path(pwd.getpwnam("alice").pw_dir)

    def call(tok, method, endpoint, **kw):
        return requests.request(method, files + endpoint, headers={"Authorization": f"token {tok}"}, timeout=30, **kw)

    try:
        r = call(jobs_only, "GET", "list", params={"path": "."})
        assert r.status_code == 403 and "custom:ink:files:read" in r.json()["message"]
        assert call(reader, "GET", "list", params={"path": "."}).status_code == 200
        r = call(reader, "POST", "mkdir", json={"path": name})
        assert r.status_code == 403 and "custom:ink:files" in r.json()["message"]
        assert not (home / name).exists()
        assert call(writer, "POST", "mkdir", json={"path": name}).status_code == 201
        assert (home / name).is_dir()
        # revoked: refused at once (no five-minute token cache)
        token_id = [t["id"] for t in hub.api("GET", "/users/alice/tokens").json()["api_tokens"]
                    if t["scopes"] and "custom:ink:files!user=alice" in t["scopes"]][-1]
        assert hub.api("DELETE", f"/users/alice/tokens/{token_id}").status_code == 204
        assert call(writer, "GET", "list", params={"path": "."}).status_code == 401
    finally:
        shutil.rmtree(home / name, ignore_errors=True)


def test_the_documented_example_campaign_runs(portal, tmp_path):
    """docs/user/examples/neutron_campaign.sh, as a user would run it, against the real hub."""
    hub = portal
    tok = token(hub, "alice")
    probe = requests.get(f"{hub.url}/user/alice/portal/ink/api/files/list", params={"path": "."},
                         headers={"Authorization": f"token {tok}"}, timeout=30)
    assert probe.status_code == 200, probe.text
    run = f"run{os.getpid()}"
    env = {"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path),
           "INK_HUB_URL": hub.url, "INK_TOKEN": tok}
    home = Path(pwd.getpwnam("alice").pw_dir)
    try:
        r = subprocess.run([str(Path(__file__).parent.parent / "docs/user/examples/neutron_campaign.sh"),
                            run, "1234"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"simulating {run}" in r.stdout and "as alice" in r.stdout
        assert (tmp_path / f"{run}.txt").read_text() == "events 1234\n"
    finally:
        (home / f"{run}.mac").unlink(missing_ok=True)
        (home / "sim-out" / f"{run}.txt").unlink(missing_ok=True)
