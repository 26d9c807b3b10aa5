"""The template service's own tests: the plugin is registered and valid, and the service
refuses anyone the hub has not logged in (a real process, a real HTTP request)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from ink_hub.service_plugins import PluginError, ServicePlugin, available_services


def test_the_entry_point_names_a_valid_plugin():
    plugin = available_services()["example"]
    assert plugin.kind == "hub-service" and plugin.title == "Example Monitor"
    assert plugin.command[1:] == ("-m", "ink_service_example.app")


def test_an_invalid_plugin_is_refused_with_the_field():
    with pytest.raises(PluginError, match="port 80"):
        ServicePlugin(name="monitor", title="Monitor", command=("x",), port=80)
    with pytest.raises(PluginError, match="name 'Bad Name'"):
        ServicePlugin(name="Bad Name", title="x", kind="portal", path="/x/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_anonymous_requests_go_to_the_hub_login():
    port = _free_port()
    env = dict(os.environ, JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
               JUPYTERHUB_SERVICE_PREFIX="/services/example/", JUPYTERHUB_API_URL="http://127.0.0.1:9/hub/api",
               JUPYTERHUB_BASE_URL="/", JUPYTERHUB_API_TOKEN="not-a-real-token",
               JUPYTERHUB_CLIENT_ID="service-example", JUPYTERHUB_SERVICE_NAME="example",
               JUPYTERHUB_OAUTH_CALLBACK_URL="/services/example/oauth_callback")
    proc = subprocess.Popen([sys.executable, "-m", "ink_service_example.app"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/services/example/", allow_redirects=False, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "the service did not start"
                time.sleep(0.1)
        assert r.status_code == 302
        assert "/hub/api/oauth2/authorize" in r.headers["Location"]
        assert "client_id=service-example" in r.headers["Location"]
        # a forged cookie does not get in either
        r = requests.get(f"http://127.0.0.1:{port}/services/example/", allow_redirects=False, timeout=5,
                         cookies={"service-example": "forged"})
        assert r.status_code == 302
    finally:
        proc.terminate()
        proc.wait(10)
