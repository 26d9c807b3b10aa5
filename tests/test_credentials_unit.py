"""The job side of session credentials (ink_spawner.credentials) against a real HTTP server,
ink-session's hand-over of the ticket, and the hub's ticket warnings (no KDC needed)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ink_hub.kerberos import Ticket, TicketKeeper
from ink_spawner import credentials

from .harness import VENV_BIN, scaled


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    for key in (credentials.ENV_CCACHE, credentials.ENV_DIR, "KRB5CCNAME"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_ccache_is_private_and_leaves_the_environment(private_tmp, monkeypatch):
    monkeypatch.setenv(credentials.ENV_CCACHE, base64.b64encode(b"\x05\x04ticket").decode())
    path = credentials.install_ccache()
    assert credentials.ENV_CCACHE not in os.environ
    assert os.environ["KRB5CCNAME"] == f"FILE:{path}"
    assert open(path, "rb").read() == b"\x05\x04ticket"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert os.path.dirname(path).startswith(str(private_tmp))


def test_no_ticket_no_ccache(private_tmp):
    assert credentials.install_ccache() is None
    assert "KRB5CCNAME" not in os.environ


class FakeHubHandler(BaseHTTPRequestHandler):
    """A real HTTP server playing the hub's /hub/api/ink/credentials."""

    answers: list = []
    seen_tokens: list = []

    def do_GET(self):  # noqa: N802
        self.seen_tokens.append(self.headers.get("Authorization"))
        status, body = self.answers.pop(0) if self.answers else (500, {})
        if self.path != "/hub/api/ink/credentials":
            status, body = 404, {}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHubHandler)
    FakeHubHandler.answers, FakeHubHandler.seen_tokens = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hub/api", FakeHubHandler
    server.shutdown()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_refresher_replaces_the_file_and_reports_warnings_once(private_tmp, fake_hub, capsys):
    api_url, hub = fake_hub
    path = str(private_tmp / "ccache")
    credentials.write_private(path, b"old")
    hub.answers += [
        (200, {"ccache": b64(b"renewed"), "warning": ""}),
        (200, {"ccache": b64(b"renewed2"), "warning": "cannot be renewed any further"}),
        (200, {"ccache": b64(b"renewed3"), "warning": "cannot be renewed any further"}),
        (500, {"message": "boom"}),
        (403, {"message": "not yours"}),
    ]
    refresher = credentials.Refresher(api_url, "server-token", path, interval=60)
    refresher.refresh_once()
    assert open(path, "rb").read() == b"renewed"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    refresher.refresh_once()
    refresher.refresh_once()
    assert open(path, "rb").read() == b"renewed3"
    out = capsys.readouterr().out
    assert out.count("WARNING: cannot be renewed any further") == 1
    refresher.refresh_once()  # the hub fails: the last good ticket stays
    refresher.refresh_once()
    assert open(path, "rb").read() == b"renewed3"
    out = capsys.readouterr().out
    assert "HTTP 500" in out and "HTTP 403" in out
    assert hub.seen_tokens == ["token server-token"] * 5
    assert not [p for p in os.listdir(private_tmp) if p.endswith(".tmp")]


def test_refresher_thread_fetches_at_start_and_every_interval(private_tmp, fake_hub):
    api_url, hub = fake_hub
    path = str(private_tmp / "ccache")
    hub.answers += [(200, {"ccache": b64(f"t{i}".encode())}) for i in range(10)]
    refresher = credentials.Refresher(api_url, "tok", path, interval=0.2)
    refresher.start()
    deadline = time.monotonic() + scaled(10)
    while len(hub.seen_tokens) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    refresher.stopped.set()
    refresher.join(scaled(5))
    assert len(hub.seen_tokens) >= 3
    assert open(path, "rb").read().startswith(b"t")


def test_ticket_from_the_env_file_is_handed_over_once(tmp_path):
    """HTCondor: the ticket comes in $INK_ENV_FILE. ink-session must move it to a file and
    re-execute itself once, not load the env file again and loop."""
    env_file = tmp_path / "env.json"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({credentials.ENV_CCACHE: b64(b"ticket"), "TMPDIR": str(tmp_path)}, f)
    env = {"PATH": os.environ["PATH"], "INK_ENV_FILE": str(env_file)}
    r = subprocess.run([str(VENV_BIN / "ink-session"), "--", sys.executable, "-c", "pass"],
                       env=env, capture_output=True, text=True, timeout=30)
    # after one hand-over it stops at the missing hub variables, and removes the ccache
    assert r.returncode == 2 and "JUPYTERHUB_API_URL" in r.stderr
    assert r.stdout.count("Kerberos credential cache in") == 1
    directory = r.stdout.split("Kerberos credential cache in ")[1].split()[0]
    assert directory.startswith(str(tmp_path / "ink-krb5-"))
    assert not os.path.exists(directory)


def test_keeper_warns_only_when_the_ticket_cannot_be_kept():
    keeper = TicketKeeper(renew_before=3600, warn_before=4 * 3600)
    now = 1_000_000
    fine = Ticket("a@R", b"x", expires=now + 600, renew_until=now + 7 * 86400)
    assert keeper.warning(fine, now) == ""
    unrenewable = Ticket("a@R", b"x", expires=now + 600, renew_until=0)
    assert "cannot be renewed any further" in keeper.warning(unrenewable, now)
    renewal_ends = Ticket("a@R", b"x", expires=now + 600, renew_until=now + 1800)
    assert "cannot be renewed any further" in keeper.warning(renewal_ends, now)
    far_end = Ticket("a@R", b"x", expires=now + 10 * 3600, renew_until=0)
    assert keeper.warning(far_end, now) == ""  # unrenewable, but not ending soon
    expired = Ticket("a@R", b"x", expires=now - 1, renew_until=now + 86400)
    assert "expired" in keeper.warning(expired, now)
    assert keeper.warning(None, now) == ""


def test_ticket_round_trips_through_auth_state_and_never_prints_itself():
    ticket = Ticket("alice@R", b"\x00secret\xff", expires=5, renew_until=9)
    state = json.loads(json.dumps(ticket.to_state()))
    assert Ticket.from_state(state) == ticket
    assert "secret" not in repr(ticket) and "c2VjcmV0" not in repr(ticket)
    assert Ticket.from_state(None) is None and Ticket.from_state({}) is None


def test_every_spawner_shares_the_one_keeper():
    """traitlets deep-copies config values into each spawner: the per-user renewal lock only
    works if they all get the same keeper."""
    import copy

    from ink_spawner.spawner import InkSpawner
    from traitlets.config import Config

    keeper = TicketKeeper()
    config = Config()
    config.InkSpawner.credentials = keeper.session_env
    assert InkSpawner(config=config).credentials.__self__ is keeper
    assert copy.deepcopy(keeper) is keeper
