"""EShell's server side in a real jupyter-server as alice: the per-shell idle timeout."""

from __future__ import annotations

import json
import time

import pytest
import requests

from .harness import scaled
from .user_server import UserServer


@pytest.fixture(scope="module")
def server(unix_users):
    s = UserServer("alice", env={"INK_SHELL_IDLE_TIMEOUT": "3"}).start()
    yield s
    s.stop()


def terminals(server) -> list[str]:
    return [t["name"] for t in requests.get(server.url + "api/terminals", headers=server.auth, timeout=10).json()]


def test_idle_shell_is_ended_and_a_busy_one_is_not(server):
    import websocket  # websocket-client

    idle = requests.post(server.url + "api/terminals", headers=server.auth, timeout=10).json()["name"]
    busy = requests.post(server.url + "api/terminals", headers=server.auth, timeout=10).json()["name"]
    ws = websocket.create_connection(server.url.replace("http", "ws") + f"terminals/websocket/{busy}",
                                     header=[f"Authorization: token {server.token}"], timeout=10)
    assert set(terminals(server)) >= {idle, busy}
    deadline = time.monotonic() + scaled(15)
    while idle in terminals(server) and time.monotonic() < deadline:
        ws.send(json.dumps(["stdin", "true\r"]))  # the busy one keeps typing
        time.sleep(0.5)
    assert idle not in terminals(server), "the idle shell was not ended"
    assert busy in terminals(server), "a shell in use was ended"
    ws.close()
    deadline = time.monotonic() + scaled(15)
    while busy in terminals(server) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert busy not in terminals(server)
