"""ink_proxy_ext's app modules on their own (no hub): the table, entry points and catalogue
agree; the commands keep to unix sockets; the desktop supervisor and the ROOT page server run
for real (Xvnc, openbox, tornado) and leave nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from ink_proxy_ext import desktop, vscode
from ink_proxy_ext.apps import APPS

from .conftest import wait_for
from .harness import REPO

ENTRY_POINTS = {"vscode": "vscode", "desktop-vnc": "desktop", "rootbrowse": "rootbrowse"}


def test_table_entry_points_and_catalogue_agree():
    defaults = yaml.safe_load((REPO / "ink_hub" / "catalogue" / "defaults.yaml").read_text())["apps"]
    for name, app in APPS.items():
        entry = defaults[name]
        assert (entry["title"], entry["default_url"], entry["description"], entry["icon"]) == \
            (app.title, app.default_url, app.description, name)
        assert Path(app.icon_path).is_file()
    found = {e.name: e.load() for e in entry_points(group="jupyter_serverproxy_servers")
             if e.value.startswith("ink_proxy_ext.")}
    assert set(found) == set(ENTRY_POINTS)
    for name, setup in found.items():
        config = setup()
        assert config["unix_socket"] is True and "port" not in config, name
        launcher = config["launcher_entry"]
        assert launcher["title"] == APPS[ENTRY_POINTS[name]].title
        assert Path(launcher["icon_path"]).is_file()
    # the desktop's tile opens the page, not the websocket endpoint
    assert found["desktop-vnc"]()["launcher_entry"]["path_info"] == "desktop"
    assert found["desktop-vnc"]()["raw_socket_proxy"] is True


def test_vscode_command_socket_only_and_state_in_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("INK_CODE_SERVER", "/opt/x/code-server")
    argv = vscode.command()
    assert argv[0] == "/opt/x/code-server"
    pairs = dict(zip(argv[1:-1:], argv[2::]))
    assert pairs["--socket"] == "{unix_socket}" and pairs["--socket-mode"] == "0600"
    assert pairs["--auth"] == "none"
    for flag in ("--disable-telemetry", "--disable-update-check", "--disable-workspace-trust"):
        assert flag in argv
    assert not any(a.startswith("--bind-addr") or a == "--port" for a in argv)
    data = Path(pairs["--user-data-dir"])
    assert data.is_relative_to(tmp_path) and Path(pairs["--extensions-dir"]).is_relative_to(tmp_path)
    assert stat.S_IMODE((tmp_path / ".local" / "share" / "ink").stat().st_mode) == 0o700
    assert '"workbench.startupEditor": "none"' in (data / "User" / "settings.json").read_text()
    assert argv[-1] == str(tmp_path)


def test_missing_program_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("INK_CODE_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(os, "access", lambda *a: False)
    with pytest.raises(RuntimeError, match="code-server is not installed"):
        vscode.command()


def test_xauthority_file_is_private_and_readable_by_xauth(tmp_path):
    path = tmp_path / "Xauthority"
    desktop.write_xauthority(str(path), b"\x01" * 16)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = subprocess.run(["xauth", "-f", str(path), "list"], capture_output=True, text=True, check=True).stdout
    assert "MIT-MAGIC-COOKIE-1" in out and "01" * 16 in out


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    kids = {int(p) for p in out.split()}
    for kid in list(kids):
        kids |= _children(kid)
    return kids


def _rfb_banner(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        return s.recv(12)


def test_desktop_supervisor_runs_xvnc_on_a_private_socket_and_stops_everything(tmp_path):
    sock = str(tmp_path / "vnc.sock")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "ink_proxy_ext.desktop", "--socket", sock],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("ink-desktop: display :"), line
        display = int(line.split(":")[2].split()[0])
        wait_for(lambda: os.path.exists(sock), timeout=20, message="RFB socket")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert _rfb_banner(sock).startswith(b"RFB 003.")
        wait_for(lambda: {"Xvnc", "openbox", "xterm"} <= {
            Path(f"/proc/{p}/comm").read_text().strip() for p in _children(proc.pid) if os.path.exists(f"/proc/{p}")},
            timeout=20, message="desktop programs")
        children = _children(proc.pid)
        # X11 needs the cookie: a client without it is refused
        r = subprocess.run(["xdpyinfo", "-display", f":{display}"], capture_output=True, text=True,
                           env={"PATH": os.environ["PATH"], "XAUTHORITY": "/nonexistent"}, timeout=20)
        assert r.returncode != 0
        # no TCP listener for X or VNC
        assert f":{6000 + display} " not in subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in children), timeout=20,
             message="every desktop process gone")
    assert not os.path.exists(f"/tmp/.X{display}-lock")
    assert not os.path.exists(f"/tmp/.X11-unix/X{display}")
    assert not os.path.exists(sock)
    assert not list(tmp_path.glob("ink-desktop-*"))


def _http_over_unix(path: str, target: str) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_rootbrowse_page_server_serves_only_its_page(tmp_path):
    sock = str(tmp_path / "rb.sock")
    proc = subprocess.Popen([sys.executable, "-m", "ink_proxy_ext.rootbrowse", "--socket", sock])
    try:
        wait_for(lambda: os.path.exists(sock), timeout=20, message="page socket")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        status, body = _http_over_unix(sock, "/")
        assert status == 200 and b"ink-files" in body and b"ink-apps/static/rootbrowse/rootbrowse.js" in body
        for target in ("/../../../etc/passwd", "/rootbrowse.js", "/%2e%2e/%2e%2e/etc/passwd"):
            status, body = _http_over_unix(sock, target)
            assert status in (403, 404) and b"root:" not in body, target
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert not os.path.exists(sock)
