"""ink-session (job side) on its failure paths; its happy path runs in every hub test."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .harness import VENV_BIN

INK_SESSION = str(VENV_BIN / "ink-session")


def run(args, env_extra=None, timeout=30):
    env = {"PATH": os.environ["PATH"], "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
           "JUPYTERHUB_API_TOKEN": "t0ken", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/jupyter/"}
    env.update(env_extra or {})
    return subprocess.run([INK_SESSION, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_server_that_dies_is_reported_with_its_exit_code():
    r = run(["--ip", "127.0.0.1", "--", sys.executable, "-c", "import sys; print('bad config'); sys.exit(7)"])
    assert r.returncode == 7
    assert "bad config" in r.stdout
    assert "exited with code 7 before it was ready" in r.stdout
    assert "reported port" not in r.stdout


def test_unreachable_hub_stops_the_server():
    # a real HTTP server (http.server takes the port positionally: adapt --port=N)
    script = ("import sys, runpy; port = [a for a in sys.argv if a.startswith('--port=')][0][7:];"
              "sys.argv = ['http.server', '--bind', '127.0.0.1', port]; runpy.run_module('http.server', run_name='__main__')")
    t0 = time.monotonic()
    r = run(["--ip", "127.0.0.1", "--", sys.executable, "-c", script])
    assert r.returncode == 1
    assert "cannot reach the hub" in r.stdout
    assert time.monotonic() - t0 < 25


def test_missing_hub_environment_is_a_usage_error():
    r = subprocess.run([INK_SESSION, "--", "true"], env={"PATH": os.environ["PATH"]},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "JUPYTERHUB_API_URL" in r.stderr
