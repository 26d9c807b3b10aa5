"""ink-session (job side) on its failure paths; its happy path runs in every hub test."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .harness import VENV_BIN, scaled

INK_SESSION = str(VENV_BIN / "ink-session")


def run(args, env_extra=None, timeout=scaled(30)):
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
    # a real HTTP server on the address and port ink-session put in JUPYTERHUB_SERVICE_URL
    script = ("import os, sys, runpy, urllib.parse; u = urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']);"
              "sys.argv = ['http.server', '--bind', u.hostname, str(u.port)]; runpy.run_module('http.server', run_name='__main__')")
    t0 = time.monotonic()
    r = run(["--ip", "127.0.0.1", "--", sys.executable, "-c", script])
    assert r.returncode == 1
    assert "cannot reach the hub" in r.stdout
    # five attempts 0.5-2 s apart (5 s of back-off): the server is stopped, not left waiting
    assert time.monotonic() - t0 < scaled(25)


def test_missing_hub_environment_is_a_usage_error():
    r = subprocess.run([INK_SESSION, "--", "true"], env={"PATH": os.environ["PATH"]},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "JUPYTERHUB_API_URL" in r.stderr


def test_port_taken_by_another_user_is_never_reported(unix_users):
    """Another user on the node binds the session's port before the server does (the server's
    command line no longer shows it, but ports can be guessed): ink-session must notice that the
    listener is not its own and refuse to report the port."""
    import pathlib
    import shutil
    import tempfile

    shared = pathlib.Path(tempfile.mkdtemp(prefix="ink-hijack-"))  # pytest's tmp_path is root-only
    os.chmod(shared, 0o777)
    port_file = shared / "port"
    # the "server" tells the test its port, then waits: the attacker answers on that port
    server = ("import os, time, urllib.parse; u = urllib.parse.urlparse(os.environ['JUPYTERHUB_SERVICE_URL']);"
              f"open({str(port_file)!r}, 'w').write(str(u.port)); time.sleep(60)")
    env = {"PATH": os.environ["PATH"], "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
           "JUPYTERHUB_API_TOKEN": "t0ken", "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/jupyter/"}
    session = subprocess.Popen(["/usr/sbin/runuser", "-u", "alice", "--", INK_SESSION, "--ip", "127.0.0.1",
                                "--", sys.executable, "-c", server],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while not port_file.exists() or not port_file.read_text():
        assert time.monotonic() < deadline, "server never started"
        time.sleep(0.05)
    port = int(port_file.read_text())
    attacker = subprocess.Popen(["/usr/sbin/runuser", "-u", "bob", "--", sys.executable, "-m", "http.server",
                                 "--bind", "127.0.0.1", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        out, _ = session.communicate(timeout=30)
    finally:
        attacker.terminate()
        attacker.wait()
        shutil.rmtree(shared)
    assert session.returncode == 1, out
    assert f"port {port} is held by another user's process" in out
    assert "reported port" not in out and "cannot reach the hub" not in out


def test_listeners_on_reads_the_kernel_socket_table():
    import socket

    from ink_spawner.session import listeners_on

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert listeners_on(port) == []  # bound, not listening
        s.listen()
        assert listeners_on(port) == [os.getuid()]
