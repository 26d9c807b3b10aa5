"""A VNC desktop in the session: TigerVNC's Xvnc + openbox + xterm, shown by noVNC.

``python -m ink_proxy_ext.desktop --socket PATH`` is the process jupyter-server-proxy starts
(entry ``desktop-vnc``, websocket only: ``raw_socket_proxy`` bridges the browser's websocket to
the RFB stream on the unix socket, so no websockify). The noVNC page itself is ``/desktop/``
(:mod:`ink_proxy_ext.extension`).

This module is a small supervisor rather than ``sh -c 'vncserver …'`` because stopping a shell
wrapper orphans Xvnc, the window manager, a dbus daemon and the X lock file. Here every child
is started by us and, when we are told to stop (SIGTERM from jupyter-server-proxy or the batch
system, or our parent dying), we stop them and remove what Xvnc leaves behind.

Nobody else on the node can use the display: RFB is only on a 0600 unix socket (``-rfbport -1``,
no TCP), X11 is not on TCP, and X clients need a cookie kept in a 0600 file.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pwd
import secrets
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from .apps import APPS, find_program

APP = APPS["desktop"]
PR_SET_PDEATHSIG = 1


def setup_desktop() -> dict:
    """jupyter-server-proxy entry (``jupyter_serverproxy_servers: desktop-vnc``)."""
    return {
        "command": [sys.executable, "-m", "ink_proxy_ext.desktop", "--socket", "{unix_socket}"],
        "unix_socket": True,
        "raw_socket_proxy": True,
        "timeout": 30,
        "new_browser_tab": True,
        # the tile opens the noVNC page, not the websocket endpoint
        "launcher_entry": {"title": APP.title, "icon_path": APP.icon_path, "path_info": "desktop",
                           "category": "Notebook"},
    }


def write_xauthority(path: str, cookie: bytes) -> None:
    """An Xauthority file with one MIT-MAGIC-COOKIE-1 entry for any host and display (FamilyWild,
    empty display number), written 0600: Xvnc accepts only clients that present the cookie."""

    def counted(data: bytes) -> bytes:
        return struct.pack(">H", len(data)) + data

    entry = struct.pack(">H", 0xFFFF) + counted(b"") + counted(b"") + counted(b"MIT-MAGIC-COOKIE-1") + counted(cookie)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(entry)


class Desktop:
    """Xvnc and the desktop session it shows, started and stopped together."""

    def __init__(self, socket_path: str, geometry: str = "1600x1000"):
        self.socket_path = socket_path
        self.geometry = geometry
        self.children: list[subprocess.Popen] = []
        self.display: int | None = None
        self.workdir = tempfile.mkdtemp(prefix="ink-desktop-")  # 0700
        self.xauthority = os.path.join(self.workdir, "Xauthority")

    def start(self, timeout: float = 20) -> None:
        xvnc = find_program("Xvnc", "INK_XVNC")
        write_xauthority(self.xauthority, secrets.token_bytes(16))
        read_fd, write_fd = os.pipe()
        self.children.append(subprocess.Popen(
            [xvnc, "-displayfd", str(write_fd), "-auth", self.xauthority,
             "-rfbunixpath", self.socket_path, "-rfbunixmode", "0600", "-rfbport", "-1",
             "-SecurityTypes", "None", "-nolisten", "tcp", "-geometry", self.geometry,
             "-depth", "24", "-AlwaysShared", "-desktop", "INK desktop"],
            pass_fds=(write_fd,), start_new_session=True, stdin=subprocess.DEVNULL))
        os.close(write_fd)
        digits = b""
        deadline = time.monotonic() + timeout
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while not digits.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([pipe], [], [], remaining)[0]:
                    break  # Xvnc hangs: give up (stop() cleans up)
                chunk = pipe.read(16)
                if not chunk:
                    break  # Xvnc exited
                digits += chunk
        if not digits.strip().isdigit():
            raise RuntimeError("Xvnc did not start (no display number)")
        self.display = int(digits)
        env = dict(os.environ, DISPLAY=f":{self.display}", XAUTHORITY=self.xauthority,
                   # the user's login shell in the terminal (a batch job's SHELL may be /bin/sh)
                   SHELL=pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh")
        env.pop("JUPYTERHUB_API_TOKEN", None)  # the desktop's programs do not need the server's token
        env.pop("JPY_API_TOKEN", None)
        terminal = ["xterm", "-ls", "-geometry", "110x32+40+40", "-title", "Terminal"]
        session = [find_program("openbox", "INK_WINDOW_MANAGER"), "--startup", " ".join(terminal)]
        if shutil.which("dbus-run-session"):
            # dbus-run-session stops its bus when the session ends (dbus-launch would orphan it)
            session = ["dbus-run-session", "--", *session]
        self.children.append(subprocess.Popen(
            session, env=env, cwd=os.path.expanduser("~"), start_new_session=True,
            stdin=subprocess.DEVNULL))

    def running(self) -> bool:
        """The desktop lives as long as its X server."""
        return bool(self.children) and self.children[0].poll() is None

    def stop(self, grace: float = 5) -> None:
        """Stop the desktop, then Xvnc (whole process groups), and remove their leftovers."""
        for child in reversed(self.children):
            self._signal_group(child, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            self._signal_group(child, signal.SIGKILL)
            child.wait()
        if self.display is not None:
            for leftover in (f"/tmp/.X{self.display}-lock", f"/tmp/.X11-unix/X{self.display}"):
                try:
                    if os.lstat(leftover).st_uid == os.getuid():
                        os.unlink(leftover)
                except OSError:
                    pass
        for path in (self.socket_path,):
            try:
                os.unlink(path)
            except OSError:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _signal_group(child: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(child.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ink-desktop", description="Run a VNC desktop on a unix socket.")
    parser.add_argument("--socket", required=True, help="unix socket path for the RFB stream")
    parser.add_argument("--geometry", default="1600x1000")
    args = parser.parse_args(argv)
    try:  # stop with our parent (jupyter-server), even if it is killed
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    parent = os.getppid()
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    desktop = Desktop(args.socket, args.geometry)
    try:
        desktop.start()
        print(f"ink-desktop: display :{desktop.display} on {args.socket}", flush=True)
        while not stopping and desktop.running() and os.getppid() == parent:
            time.sleep(0.2)
    finally:
        desktop.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
