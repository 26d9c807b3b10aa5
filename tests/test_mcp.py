"""INK's MCP server with the SDK's real client, against a real hub + proxy + Slurm.

`ink mcp` runs as a subprocess on stdio with the login of `ink login` (mcp.ClientSession over
mcp.client.stdio); the portal's endpoint is reached through the hub's proxy with
mcp.client.streamable_http. Jobs run on the dev Slurm as the user; files are the user's real
files; tokens are made, scoped and revoked by the real hub.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
import requests
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from .conftest import SLURM_HUB_CONFIG, TIMEOUT_SCALE, cancel_test_jobs, squeue_active
from .harness import Hub

pytestmark = [pytest.mark.slurm, pytest.mark.hub]

INK = str(Path(sys.prefix) / "bin" / "ink")

CATALOGUE = """
defaults: {memory: 1G, walltime: "1:00:00"}
limits: {cpus: 2, memory: 4G, walltime: "2:00:00"}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter, portal]
"""

WRITING = {"submit_job", "cancel_job", "write_file", "start_session", "stop_session"}
ALL_TOOLS = WRITING | {"list_jobs", "job_status", "job_output", "job_metrics", "list_files", "stat",
                       "read_text_file", "storage_usage", "list_sessions", "cluster_overview"}
FINAL = ("completed", "failed", "cancelled")
#: carol's portal serves the endpoint in both safety modes (InkMcpApp traits on its command line)
CAROL_WORKSPACE = "mcp-carol-ws"
HUB_CONFIG = SLURM_HUB_CONFIG + f"""
def _carol_portal_modes(spawner):
    if spawner.user.name == "carol" and spawner.name == "portal":
        spawner.args = ["--InkMcpApp.read_only=True", "--InkMcpApp.workspace={CAROL_WORKSPACE}"]
c.Spawner.pre_spawn_hook = _carol_portal_modes
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory, unix_users, dev_slurm):
    hub = Hub(tmp_path_factory.mktemp("mcp-hub"), HUB_CONFIG, backend="slurm",
              catalogue=CATALOGUE).start()
    for user in ("alice", "bob"):
        hub.api("POST", f"/users/{user}")
        hub.start_and_wait(user, "portal")
    yield hub
    for user in ("alice", "bob", "carol"):
        for name in list(hub.user_model(user).get("servers", {})):
            hub.api("DELETE", f"/users/{user}/servers/{name}")
    hub.stop()
    cancel_test_jobs()


def make_token(hub: Hub, user: str, scopes: list[str] | None = None) -> tuple[str, str]:
    """(token, token id), as the token page makes it (all the user's permissions by default)."""
    body = {"note": "mcp test", "expires_in": 3600}
    if scopes is not None:
        body["scopes"] = scopes
    r = hub.api("POST", f"/users/{user}/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.json()["token"], r.json()["id"]


def as_user(user: str, *argv: str) -> None:
    subprocess.run(["/usr/sbin/runuser", "-u", user, "--", *argv], check=True)


@pytest.fixture(scope="module")
def workspace(hub):
    """A folder in alice's home, made by alice: a text file, a binary file, a folder, a symlink
    leading out of it (to her home's secret), and a sibling whose name starts like it."""
    home = Path(pwd.getpwnam("alice").pw_dir)
    name = f"mcp-ws-{secrets.token_hex(4)}"
    ws, sibling, secret = home / name, home / f"{name}-evil", home / f"{name}-secret.txt"
    as_user("alice", "mkdir", "-p", str(ws / "sub"), str(sibling))
    as_user("alice", "sh", "-c", f"echo 'notes of alice' > '{ws}/notes.txt'; printf 'a\\0b' > '{ws}/data.bin'; "
                                 f"echo 'top secret' > '{secret}'; echo sibling > '{sibling}/x.txt'; "
                                 f"ln -s '{secret}' '{ws}/escape'; ln -s /etc '{ws}/etc-link'")
    yield ws
    shutil.rmtree(ws, ignore_errors=True)
    shutil.rmtree(sibling, ignore_errors=True)
    secret.unlink(missing_ok=True)


def login(hub: Hub, tmp_path: Path, user: str, token: str) -> dict:
    """`ink login` into a private config; the environment for `ink mcp` to use it."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "INK_CONFIG": str(tmp_path / f"{user}.json")}
    r = subprocess.run([INK, "login", "--hub", hub.url, "--token", token], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return env


@asynccontextmanager
async def stdio_session(env: dict, *args: str, log: Path | None = None):
    params = StdioServerParameters(command=INK, args=["mcp", *args, *(["--log", str(log)] if log else [])],
                                   env=env)
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def http_session(hub: Hub, user: str, token: str | None, timeout: float = 120):
    headers = {"Authorization": f"token {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout)) as http:
        async with streamable_http_client(f"{hub.url}/user/{user}/portal/ink/mcp", http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


async def refused_over_http(hub: Hub, user: str, token: str) -> str:
    """The message an MCP client gets when the endpoint refuses it at the first request."""
    try:
        async with http_session(hub, user, token) as session:
            await session.list_tools()
    except BaseException as e:  # the SDK raises its MCPError inside exception groups
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        return str(e)
    raise AssertionError("the endpoint accepted the token")


def data(result) -> dict:
    assert not result.is_error, result.content[0].text if result.content else result
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def error_text(result) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return result.content[0].text


async def wait_state(session, job_id: str, states, timeout: float = 120) -> dict:
    """The job's record once its state is one of ``states`` (deadline × TIMEOUT_SCALE)."""
    with anyio.fail_after(timeout * TIMEOUT_SCALE):
        while True:
            job = data(await session.call_tool("job_status", {"job_id": job_id}))
            if job["state"] in states:
                return job
            await anyio.sleep(0.3)


async def wait_final(session, job_id: str, timeout: float = 120) -> dict:
    return await wait_state(session, job_id, FINAL, timeout)


async def test_stdio_tools_have_schemas_hints_resources_and_prompt(hub, tmp_path):
    token, _ = make_token(hub, "alice")
    env = login(hub, tmp_path, "alice", token)
    async with stdio_session(env) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == ALL_TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 30, tool.name
            assert tool.input_schema["type"] == "object"
            assert tool.annotations is not None
        for name in ("cancel_job", "write_file", "stop_session"):
            assert tools[name].annotations.destructive_hint is True, name
        for name in ALL_TOOLS - WRITING:
            assert tools[name].annotations.read_only_hint is True, name
        assert tools["submit_job"].annotations.destructive_hint is False
        props = tools["job_output"].input_schema["properties"]
        assert {"job_id", "stream", "offset", "limit"} <= set(props)
        assert props["stream"]["enum"] == ["stdout", "stderr"]
        templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
        assert "ink://files/{+path}" in templates
        prompts = {p.name: p for p in (await session.list_prompts()).prompts}
        assert [a.name for a in prompts["why_did_my_job_fail"].arguments] == ["job_id"]


async def test_stdio_submit_read_output_refusals_and_prompt(hub, tmp_path):
    token, _ = make_token(hub, "alice")
    env = login(hub, tmp_path, "alice", token)
    log = tmp_path / "mcp.log"
    async with stdio_session(env, log=log) as session:
        job = data(await session.call_tool("submit_job", {
            "command": ["sh", "-c", "id -un; echo hello-mcp; echo oops >&2"], "name": "mcp-hello"}))
        assert job["state"] in ("pending", "running", "completed") and job["backend"] == "slurm"
        done = await wait_final(session, job["id"])
        assert done["state"] == "completed" and done["exit_code"] == 0 and done["node"]
        out = data(await session.call_tool("job_output", {"job_id": job["id"]}))
        assert out["data"] == "alice\nhello-mcp\n" and out["complete"] and out["state"] == "completed"
        part = data(await session.call_tool("job_output", {"job_id": job["id"], "offset": 6, "limit": 5}))
        assert part["data"] == "hello" and part["next_offset"] == 11 and not part["complete"]
        tail = data(await session.call_tool("job_output", {"job_id": job["id"], "offset": -4}))
        assert tail["data"] == "mcp\n"
        err = data(await session.call_tool("job_output", {"job_id": job["id"], "stream": "stderr"}))
        assert err["data"] == "oops\n"
        listed = data(await session.call_tool("list_jobs", {}))["jobs"]
        assert job["id"] in [j["id"] for j in listed]
        metrics = data(await session.call_tool("job_metrics", {"job_id": job["id"]}))
        # Job Lens samples every job of the job API: the tool hands its figures on, with the
        # final summary of this (ended) job
        summary = metrics["summary"]
        assert metrics["available"] is True and metrics["id"] == job["id"], metrics
        assert summary["final"] is True and summary["exit_code"] == 0 and summary["cpus"] == done["cpus"], summary
        assert summary["duration_s"] >= 0 and summary["cpu_seconds"] >= 0, summary

        # the job API's validator decides; its message reaches the model
        refused = error_text(await session.call_tool("submit_job", {"command": ["true"], "cpus": 64}))
        assert "HTTP 400" in refused and "cpus" in refused
        assert "HTTP 404" in error_text(await session.call_tool("job_status", {"job_id": "000000000000"}))
        # the SDK validates arguments against the schema before the tool runs
        assert (await session.call_tool("job_output", {"job_id": job["id"], "stream": "../x"})).is_error

        failing = data(await session.call_tool("submit_job", {
            "script": "#!/bin/sh\necho 'ImportError: no module named fitlib' >&2\nexit 3\n"}))
        failed = await wait_final(session, failing["id"])
        assert failed["state"] == "failed" and failed["exit_code"] == 3
        prompt = await session.get_prompt("why_did_my_job_fail", {"job_id": failing["id"]})
        text = prompt.messages[0].content.text
        assert "no module named fitlib" in text and "exit_code: 3" in text and failing["id"] in text

        overview = data(await session.call_tool("cluster_overview", {}))
        assert overview["backend"] == "slurm" and overview["error"] is None
        assert all(isinstance(g["running"], int) and isinstance(g["pending"], int) for g in overview["groups"])
        sessions = data(await session.call_tool("list_sessions", {}))["sessions"]
        assert {"app": "portal", "ready": True} == {k: s[k] for s in sessions if s["app"] == "portal" for k in ("app", "ready")}
    text = log.read_text()
    assert "user=alice tool=submit_job outcome=ok" in text
    assert "user=alice tool=submit_job outcome=error status=400" in text
    assert "user=alice tool=job_output outcome=ok" in text
    assert token not in text and "fitlib" not in text and "hello-mcp" not in text


async def test_stdio_workspace_confines_every_file_tool(hub, tmp_path, workspace):
    token, _ = make_token(hub, "alice")
    env = login(hub, tmp_path, "alice", token)
    async with stdio_session(env, "--workspace", str(workspace)) as session:
        listing = data(await session.call_tool("list_files", {}))
        assert listing["path"] == str(workspace)
        assert {"notes.txt", "sub", "escape", "data.bin"} <= {e["name"] for e in listing["entries"]}
        assert data(await session.call_tool("read_text_file", {"path": "notes.txt"}))["text"] == "notes of alice\n"
        assert data(await session.call_tool("stat", {"path": f"{workspace}/sub"}))["type"] == "directory"
        assert "not a text file" in error_text(await session.call_tool("read_text_file", {"path": "data.bin"}))
        resource = await session.read_resource("ink://files/notes.txt")
        assert resource.contents[0].text == "notes of alice\n"

        home = pwd.getpwnam("alice").pw_dir
        # refused here (plainly outside) ...
        for path in ("..", "../", "sub/../../", home, "/etc/passwd", "~/.bashrc", f"{workspace}-evil/x.txt"):
            message = error_text(await session.call_tool("read_text_file", {"path": path}))
            assert "outside the workspace" in message, (path, message)
        assert "outside the workspace" in error_text(await session.call_tool("list_files", {"path": ".."}))
        # ... and by the server, which alone can follow symlinks
        message = error_text(await session.call_tool("read_text_file", {"path": "escape"}))
        assert "HTTP 403" in message and "outside the workspace" in message, message  # home, not workspace
        for path in ("etc-link", "etc-link/passwd"):  # outside everything the user's roots allow
            message = error_text(await session.call_tool("read_text_file", {"path": path}))
            assert "HTTP 403" in message and "outside" in message, (path, message)
        assert "HTTP 403" in error_text(await session.call_tool("list_files", {"path": "etc-link"}))
        assert "HTTP 403" in error_text(await session.call_tool("write_file", {"path": "escape", "content": "x", "overwrite": True}))
        assert (Path(home) / f"{workspace.name}-secret.txt").read_text() == "top secret\n"

        written = data(await session.call_tool("write_file", {"path": "sub/result.txt", "content": "42\n"}))
        assert written["size"] == 3
        assert (workspace / "sub" / "result.txt").read_text() == "42\n"
        assert pwd.getpwuid((workspace / "sub" / "result.txt").stat().st_uid).pw_name == "alice"
        assert "HTTP 409" in error_text(await session.call_tool("write_file", {"path": "sub/result.txt", "content": "43\n"}))
        usage = data(await session.call_tool("storage_usage", {}))["roots"]
        assert [r["path"] for r in usage] == [str(workspace)]
        assert usage[0]["total"] >= usage[0]["used"] >= 0 and usage[0]["free"] > 0

        # a job's working directory stays in the workspace too
        job = data(await session.call_tool("submit_job", {"command": ["pwd"]}))
        await wait_final(session, job["id"])
        assert data(await session.call_tool("job_output", {"job_id": job["id"]}))["data"] == f"{workspace}\n"
        assert "outside the workspace" in error_text(await session.call_tool("submit_job", {"command": ["pwd"], "workdir": "/tmp"}))

    # the server's check on its own: a request naming the workspace cannot leave it
    portal = f"{hub.url}/user/alice/portal/ink/api/files"
    headers = {"Authorization": f"token {token}", "X-Ink-Within": str(workspace)}
    r = requests.get(f"{portal}/download", params={"path": f"{workspace}/escape"}, headers=headers, timeout=30)
    assert r.status_code == 403 and "outside the workspace" in r.json()["message"] and b"secret" not in r.content
    r = requests.get(f"{portal}/download", params={"path": f"{workspace}/notes.txt"}, headers=headers, timeout=30)
    assert r.status_code == 200 and r.content == b"notes of alice\n"
    r = requests.get(f"{portal}/list", params={"path": f"{workspace}/sub/../.."}, headers=headers, timeout=30)
    assert r.status_code == 403
    r = requests.get(f"{portal}/stat", params={"path": "x"}, timeout=30,
                     headers={**headers, "X-Ink-Within": "/etc"})
    assert r.status_code == 403  # the workspace itself must lie in the user's roots


async def test_stdio_read_only_lists_no_writing_tool(hub, tmp_path, workspace):
    token, _ = make_token(hub, "alice")
    env = login(hub, tmp_path, "alice", token)
    async with stdio_session(env, "--read-only", "--workspace", str(workspace)) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools == ALL_TOOLS - WRITING
        result = await session.call_tool("write_file", {"path": "new.txt", "content": "x"})
        assert result.is_error and "write_file" in result.content[0].text
        assert not (workspace / "new.txt").exists()
        assert (await session.call_tool("submit_job", {"command": ["true"]})).is_error
        assert data(await session.call_tool("read_text_file", {"path": "notes.txt"}))["text"] == "notes of alice\n"


async def test_stdio_revoked_token_is_a_clear_error(hub, tmp_path):
    token, token_id = make_token(hub, "alice")
    env = login(hub, tmp_path, "alice", token)
    async with stdio_session(env) as session:
        assert isinstance(data(await session.call_tool("list_jobs", {}))["jobs"], list)
        assert hub.api("DELETE", f"/users/alice/tokens/{token_id}").status_code == 204
        message = error_text(await session.call_tool("list_jobs", {}))
        assert "HTTP 401" in message and "revoked" in message and "ink login" in message
        message = error_text(await session.call_tool("list_sessions", {}))
        assert "HTTP 403" in message or "HTTP 401" in message


async def test_bob_cannot_see_alice_jobs(hub, tmp_path):
    alice_token, _ = make_token(hub, "alice")
    bob_token, _ = make_token(hub, "bob")
    async with stdio_session(login(hub, tmp_path, "alice", alice_token)) as alice:
        job = data(await alice.call_tool("submit_job", {"command": ["echo", "alice-only"], "name": "private"}))
        await wait_final(alice, job["id"])
    async with stdio_session(login(hub, tmp_path, "bob", bob_token)) as bob:
        ids = [j["id"] for j in data(await bob.call_tool("list_jobs", {}))["jobs"]]
        assert job["id"] not in ids
        for tool in ("job_status", "job_output", "cancel_job"):
            message = error_text(await bob.call_tool(tool, {"job_id": job["id"]}))
            assert "HTTP 404" in message, (tool, message)
        listing = data(await bob.call_tool("list_files", {}))
        assert listing["path"] == pwd.getpwnam("bob").pw_dir
        message = error_text(await bob.call_tool("read_text_file", {"path": job["stdout_path"]}))
        assert "HTTP 403" in message  # alice's home is not among bob's roots
    # bob's token at alice's MCP endpoint: refused before any tool runs
    r = requests.post(f"{hub.url}/user/alice/portal/ink/mcp", json={"jsonrpc": "2.0", "id": 7}, timeout=30,
                      headers={"Authorization": f"token {bob_token}"})
    assert r.status_code == 403 and r.json()["id"] == 7
    assert r.json()["error"]["message"] == "HTTP 403: this token may not access alice's server portal"
    assert "HTTP 403" in await refused_over_http(hub, "alice", bob_token)


async def test_http_endpoint_with_the_sdk_client(hub, workspace):
    token, token_id = make_token(hub, "alice")
    async with http_session(hub, "alice", token) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools == ALL_TOOLS
        job = data(await session.call_tool("submit_job", {"command": ["sh", "-c", "echo over-http; id -un"]}))
        done = await wait_final(session, job["id"])
        assert done["state"] == "completed"
        assert data(await session.call_tool("job_output", {"job_id": job["id"]}))["data"] == "over-http\nalice\n"
        names = {e["name"] for e in data(await session.call_tool("list_files", {"path": str(workspace)}))["entries"]}
        assert {"notes.txt", "sub"} <= names
        assert "HTTP 400" in error_text(await session.call_tool("submit_job", {"command": ["true"], "walltime": "99:00:00"}))
        usage = data(await session.call_tool("storage_usage", {}))["roots"]
        assert usage[0]["name"] == "Home" and usage[0]["free"] > 0

    # no token, a token without INK's scopes, a revoked token: refused with a message
    endpoint = f"{hub.url}/user/alice/portal/ink/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    r = requests.post(endpoint, json=body, headers=accept, timeout=30, allow_redirects=False)
    assert r.status_code == 401 and "needs a hub token" in r.json()["error"]["message"]
    assert "needs a hub token" in await refused_over_http(hub, "alice", None)
    plain, _ = make_token(hub, "alice", ["access:servers!user=alice"])
    r = requests.post(endpoint, json=body, headers={**accept, "Authorization": f"token {plain}"}, timeout=30)
    assert r.status_code == 403 and "custom:ink:jobs:read" in r.json()["error"]["message"]
    r = requests.post(endpoint, json=body, headers={**accept, "Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200 and "submit_job" in r.text
    assert hub.api("DELETE", f"/users/alice/tokens/{token_id}").status_code == 204
    r = requests.post(endpoint, json=body, headers={**accept, "Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 401 and r.json()["id"] == 1
    assert r.json()["error"]["message"] == "HTTP 401: the token is invalid, expired or revoked"
    assert await refused_over_http(hub, "alice", token) == "HTTP 401: the token is invalid, expired or revoked"

    # every call is in the portal's log with the caller, the tool and the outcome; no token
    log = Path(hub.spawner_state("alice", "portal")["job_output"]).read_text()
    assert "ink-mcp user=alice tool=submit_job outcome=ok" in log
    assert "ink-mcp user=alice tool=submit_job outcome=error status=400" in log
    assert token not in log and "over-http" not in log


async def test_http_endpoint_read_only_token_cannot_submit(hub):
    """A token with only the read scopes sees the tools, but the job API refuses the submit."""
    token, _ = make_token(hub, "alice", ["access:servers!server=alice/portal", "custom:ink:jobs:read!user=alice",
                                         "read:users:name!user=alice"])
    async with http_session(hub, "alice", token) as session:
        assert isinstance(data(await session.call_tool("list_jobs", {}))["jobs"], list)
        message = error_text(await session.call_tool("submit_job", {"command": ["true"]}))
        assert "HTTP 403" in message and "custom:ink:jobs" in message
        message = error_text(await session.call_tool("list_files", {}))
        assert "HTTP 403" in message and "custom:ink:files:read" in message


async def test_http_checked_key_never_replaces_the_hub_check(hub):
    """The endpoint's key (X-Ink-Checked) spares its own tools a second hub check; a key sent
    from outside is worth nothing: a revoked token is refused at once, with or without one."""
    token, token_id = make_token(hub, "alice")
    jobs = f"{hub.url}/user/alice/portal/ink/api/v1/jobs"
    forged = {"Authorization": f"token {token}", "X-Ink-Checked": secrets.token_urlsafe(32)}
    assert requests.get(jobs, headers=forged, timeout=30).status_code == 200  # the hub was asked
    async with http_session(hub, "alice", token) as session:
        assert isinstance(data(await session.call_tool("list_jobs", {}))["jobs"], list)
        assert hub.api("DELETE", f"/users/alice/tokens/{token_id}").status_code == 204
        # the very next MCP request is refused: the token is checked once per MCP request
        message = error_text_or_refusal(await call_or_refusal(session, "list_jobs", {}))
        assert "HTTP 401" in message and "revoked" in message, message
    r = requests.get(jobs, headers=forged, timeout=30)
    assert r.status_code == 401 and "revoked" in r.json()["message"]


async def call_or_refusal(session, tool: str, args: dict):
    try:
        return await session.call_tool(tool, args)
    except Exception as e:  # noqa: BLE001  (the endpoint refuses before the tool: an MCP error)
        return e


def error_text_or_refusal(result) -> str:
    return str(result) if isinstance(result, Exception) else error_text(result)


async def test_http_endpoint_read_only_and_workspace_settings(hub):
    """InkMcpApp.read_only and InkMcpApp.workspace (relative to the home), set on carol's
    portal: over streamable HTTP no writing tool is listed or runs, and every file tool stays
    in the workspace."""
    home = Path(pwd.getpwnam("carol").pw_dir)
    ws, secret = home / CAROL_WORKSPACE, home / "mcp-carol-secret.txt"
    as_user("carol", "mkdir", "-p", str(ws / "sub"))
    as_user("carol", "sh", "-c", f"echo 'notes of carol' > '{ws}/notes.txt'; echo 'carol secret' > '{secret}'")
    hub.api("POST", "/users/carol")
    hub.start_and_wait("carol", "portal")
    try:
        token, _ = make_token(hub, "carol")
        async with http_session(hub, "carol", token) as session:
            assert {t.name for t in (await session.list_tools()).tools} == ALL_TOOLS - WRITING
            for tool, args in (("write_file", {"path": "new.txt", "content": "x"}),
                               ("submit_job", {"command": ["true"]}), ("cancel_job", {"job_id": "0" * 12}),
                               ("start_session", {"app": "jupyter"}), ("stop_session", {"app": "portal"})):
                result = await session.call_tool(tool, args)
                assert result.is_error and tool in result.content[0].text, (tool, result.content)
            assert not (ws / "new.txt").exists()
            assert "ink-" not in " ".join(squeue_active("carol"))  # nothing was submitted

            listing = data(await session.call_tool("list_files", {}))
            assert listing["path"] == str(ws) and {e["name"] for e in listing["entries"]} == {"notes.txt", "sub"}
            assert data(await session.call_tool("read_text_file", {"path": "notes.txt"}))["text"] == "notes of carol\n"
            assert data(await session.call_tool("stat", {"path": f"{ws}/sub"}))["type"] == "directory"
            for path in ("..", str(secret), "/etc/passwd", "~/.bashrc"):
                message = error_text(await session.call_tool("read_text_file", {"path": path}))
                assert "outside the workspace" in message and "carol secret" not in message, (path, message)
            usage = data(await session.call_tool("storage_usage", {}))["roots"]
            assert [r["path"] for r in usage] == [str(ws)]
        assert hub.user_model("carol")["servers"]["portal"]["ready"]  # stop_session did not run
    finally:
        hub.api("DELETE", "/users/carol/servers/portal")
        shutil.rmtree(ws, ignore_errors=True)
        secret.unlink(missing_ok=True)


async def test_http_cancel_metrics_and_sessions(hub):
    """Over streamable HTTP: the owner cancels a running job (gone from Slurm), Job Lens
    figures of a job that used the CPU, and a JupyterLab session started and stopped."""
    token, _ = make_token(hub, "alice")
    async with http_session(hub, "alice", token, timeout=300 * TIMEOUT_SCALE) as session:
        busy = data(await session.call_tool("submit_job", {
            "command": ["python3", "-c", "import time\nt = time.time()\nwhile time.time() - t < 2: pass"],
            "name": "mcp-busy"}))
        sleeper = data(await session.call_tool("submit_job", {"command": ["sleep", "600"], "name": "mcp-sleep"}))
        running = await wait_state(session, sleeper["id"], ("running",) + FINAL)
        assert running["state"] == "running", running
        cancelled = data(await session.call_tool("cancel_job", {"job_id": sleeper["id"]}))
        assert cancelled["id"] == sleeper["id"]
        assert (await wait_final(session, sleeper["id"]))["state"] == "cancelled"
        assert sleeper["backend_id"] not in squeue_active("alice")

        done = await wait_final(session, busy["id"])
        assert done["state"] == "completed" and done["exit_code"] == 0, done
        metrics = data(await session.call_tool("job_metrics", {"job_id": busy["id"]}))
        summary = metrics["summary"]
        assert metrics["available"] is True and summary["final"] is True and summary["exit_code"] == 0, metrics
        assert summary["duration_s"] >= 1.5 and summary["cpu_seconds"] >= 1.0, summary  # 2 s of busy loop
        assert summary["rss_peak"] > 0 and metrics["efficiency"].startswith("used "), metrics

        started = data(await session.call_tool("start_session", {"app": "jupyter", "wait": True}))
        assert started["ready"] is True and started["url"].endswith("/user/alice/jupyter/"), started
        job_id = hub.spawner_state("alice", "jupyter")["job_id"]
        assert job_id in squeue_active("alice")
        sessions = {s["app"]: s for s in data(await session.call_tool("list_sessions", {}))["sessions"]}
        assert sessions["jupyter"]["ready"] is True
        stopped = data(await session.call_tool("stop_session", {"app": "jupyter"}))
        assert stopped == {"app": "jupyter", "stopped": True}
        assert "jupyter" not in hub.user_model("alice").get("servers", {})
        assert job_id not in squeue_active("alice")
        sessions = {s["app"]: s for s in data(await session.call_tool("list_sessions", {}))["sessions"]}
        assert not sessions.get("jupyter", {}).get("ready")
