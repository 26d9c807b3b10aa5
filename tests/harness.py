"""A real JupyterHub (with configurable-http-proxy) in a subprocess, for tests and benchmarks.

Nothing here is mocked: the hub runs ``jupyterhub`` from this environment with a generated
config, the proxy is the pinned configurable-http-proxy, and sessions run on the configured
backend (local processes or the dev Slurm).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.prefix) / "bin"
TEST_USERS = ("alice", "bob", "carol", "dave", "erin")

#: Deadlines of state waits are multiplied by this (CI runs on 2 busy cores, and the suite must
#: pass under ``stress-ng --cpu 2``): a wait returns as soon as its state is reached, so a longer
#: deadline never slows a passing test; it only keeps a loaded machine from failing one.
TIMEOUT_SCALE = float(os.environ.get("INK_TEST_TIMEOUT_SCALE", "4"))


def scaled(seconds: float) -> float:
    """A deadline or slack of ``seconds`` on an idle machine, stretched by TIMEOUT_SCALE."""
    return seconds * TIMEOUT_SCALE
#: hub_id of every hub this test run starts: its session jobs carry comment hub=<id>, so a
#: clean-up cancels this run's jobs and never those of another run on the same Slurm
TEST_HUB_ID = f"test{os.getpid()}"

# The site overlay of test hubs: a second app so that two named servers can run at once, and
# 1 GB sessions (memory is not consumable on the dev Slurm, but keep requests modest).
TEST_CATALOGUE = """
defaults: {memory: 1G}
apps:
  second: {title: Second JupyterLab, default_url: /lab}
experiments:
  default:
    title: Everyone
    members: {everyone: true}
    apps: [jupyter, second]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_unix_users(names=TEST_USERS) -> None:
    """Sessions run as real Unix users: create the test users (root only)."""
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            if os.geteuid() != 0:
                raise RuntimeError(f"test user {name!r} is missing and only root can create it") from None
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)


class Hub:
    """One hub process. ``extra_config`` is appended to the generated jupyterhub_config.py."""

    def __init__(self, workdir: Path, extra_config: str = "", backend: str = "local",
                 catalogue: str = TEST_CATALOGUE):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.extra_config = textwrap.dedent(extra_config)
        self.catalogue = textwrap.dedent(catalogue)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.proxy_token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "hub.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/hub/api"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"

    def write_config(self) -> Path:
        config = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from ink_hub.config import configure
c = get_config()
configure(c, [{str(self.workdir / "site.yaml")!r}])
c.JupyterHub.bind_url = {self.url!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.proxy_api_port}"
c.ConfigurableHTTPProxy.auth_token = {self.proxy_token!r}
c.ConfigurableHTTPProxy.command = [{str(REPO / 'node_modules/.bin/configurable-http-proxy')!r}]
c.JupyterHub.db_url = "sqlite:///{self.workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{self.workdir}/cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{self.workdir}/proxy.pid"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "test-password"
c.Authenticator.allowed_users = {set(TEST_USERS)!r}
c.JupyterHub.services.append({{"name": "ink-test", "api_token": {self.token!r}}})  # after INK's services
c.JupyterHub.load_roles.append({{"name": "ink-test", "services": ["ink-test"],  # after INK's roles
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users",
               "access:servers", "read:servers", "admin:server_state", "admin:groups"]}})
c.InkSpawner.backend = {self.backend!r}
c.InkSpawner.hub_id = {TEST_HUB_ID!r}
c.InkSpawner.session_command = [{str(VENV_BIN / 'ink-session')!r}]
c.InkSpawner.job_path = {os.pathsep.join([str(VENV_BIN), '/usr/local/bin', '/usr/bin', '/bin'])!r}
c.JupyterHub.log_level = "DEBUG"
"""
        (self.workdir / "site.yaml").write_text(self.catalogue)
        path = self.workdir / "jupyterhub_config.py"
        path.write_text(config + "\n" + self.extra_config)
        return path

    def start(self, timeout: float = 180) -> "Hub":
        """Start the hub; ``timeout`` (idle-machine seconds) is scaled by TIMEOUT_SCALE."""
        timeout = scaled(timeout)
        config = self.write_config()
        log = open(self.log_path, "ab")
        env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.session.get(f"{self.api_url}/", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub did not start in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop hub and proxy; sessions keep running (cleanup_servers is False)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(30))
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    # ---- REST helpers --------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", scaled(30))
        return self.session.request(method, f"{self.api_url}{path}", **kwargs)

    def user_model(self, user: str) -> dict:
        r = self.api("GET", f"/users/{user}")
        if r.status_code == 404:
            return {"servers": {}}
        r.raise_for_status()
        return r.json()

    def server(self, user: str, name: str) -> dict | None:
        return self.user_model(user).get("servers", {}).get(name)

    def request_server(self, user: str, name: str, options: dict | None = None) -> requests.Response:
        self.api("POST", f"/users/{user}")  # create the user if needed (409 if it exists)
        return self.api("POST", f"/users/{user}/servers/{name}", json=options or {})

    def wait_ready(self, user: str, name: str, timeout: float = 120) -> dict:
        """Wait for ready (the state, not a time); ``timeout`` is scaled by TIMEOUT_SCALE."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(user, name)
            if server and server.get("ready"):
                return server
            if server is None or (not server.get("pending") and not server.get("ready")):
                raise RuntimeError(f"{user}/{name} is no longer starting:\n{self.log_tail(30)}")
            time.sleep(0.05)
        raise TimeoutError(f"{user}/{name} not ready after {timeout}s:\n{self.log_tail(30)}")

    def wait_stopped(self, user: str, name: str, timeout: float = 60) -> float:
        """Wait until the server is gone and return the seconds that took; ``timeout`` is
        scaled by TIMEOUT_SCALE."""
        timeout = scaled(timeout)
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.server(user, name) is None:
                return time.monotonic() - start
            time.sleep(0.1)
        raise TimeoutError(f"{user}/{name} still listed after {timeout}s")

    def start_and_wait(self, user: str, name: str, options: dict | None = None,
                       timeout: float = 120) -> dict:
        r = self.request_server(user, name, options)
        if r.status_code not in (201, 202):
            raise RuntimeError(f"spawn {user}/{name}: HTTP {r.status_code} {r.text}")
        return self.wait_ready(user, name, timeout)

    def stop_server(self, user: str, name: str, timeout: float = 60) -> None:
        r = self.api("DELETE", f"/users/{user}/servers/{name}")
        if r.status_code not in (202, 204):
            raise RuntimeError(f"stop {user}/{name}: HTTP {r.status_code} {r.text}")
        self.wait_stopped(user, name, timeout)

    def user_token(self, user: str) -> str:
        r = self.api("POST", f"/users/{user}/tokens", json={"note": "test", "expires_in": 3600})
        r.raise_for_status()
        return r.json()["token"]

    def progress(self, user: str, name: str, timeout: float = 120,
                 events: list | None = None) -> list[dict]:
        """Read the spawn's progress event stream until it ends; events get an arrival time.
        ``events``, if given, receives each event as it arrives (for a test watching a spawn
        from another thread); ``timeout`` (the longest pause between two events) is scaled."""
        events = [] if events is None else events
        with self.session.get(f"{self.api_url}/users/{user}/servers/{name}/progress",
                              stream=True, timeout=scaled(timeout)) as r:
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    event = json.loads(line[5:])
                    event["t"] = time.monotonic()
                    events.append(event)
        return events

    def proxy_routes(self) -> dict:
        """The routing table straight from configurable-http-proxy's API (not the hub's view)."""
        r = requests.get(f"http://127.0.0.1:{self.proxy_api_port}/api/routes", timeout=scaled(10),
                         headers={"Authorization": f"token {self.proxy_token}"})
        r.raise_for_status()
        return r.json()

    def spawner_state(self, user: str, name: str) -> dict:
        server = self.server(user, name) or {}
        return server.get("state") or {}


class Kernel:
    """A kernel of the session, driven through the hub's proxy (REST + websocket)."""

    def __init__(self, hub, user, server, token):
        import websocket  # noqa: PLC0415 (a test dependency, not the harness's)

        self.base = f"{hub.url}/user/{user}/{server}"
        self.headers = {"Authorization": f"token {token}"}
        r = requests.post(f"{self.base}/api/kernels", headers=self.headers, json={}, timeout=60)
        r.raise_for_status()
        self.id = r.json()["id"]
        ws_url = self.base.replace("http://", "ws://") + f"/api/kernels/{self.id}/channels"
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"],
                                              timeout=600)

    def run(self, code: str, timeout: float = 600) -> tuple[str, dict | None]:
        """Execute code; return (stdout, error content or None)."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False}}))
        # The reply comes on the shell channel, the output on iopub: they are not ordered, so
        # the run is over when both the reply and iopub's "idle" for this request have come
        # (returning at the reply lost a print that arrived after it, on a loaded machine).
        out, error, deadline = [], None, time.monotonic() + timeout
        replied = idle = False
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                error = msg["content"]
            elif kind == "execute_reply" and msg["channel"] == "shell":
                replied = True
            elif kind == "status" and msg["content"].get("execution_state") == "idle":
                idle = True
            if replied and idle:
                return "".join(out), error
        raise TimeoutError(f"no reply within {timeout}s; output so far: {''.join(out)}")

    def close(self):
        self.ws.close()
