"""A real jupyter-server with INK's extensions, running as a test user with a throwaway home.

The file manager runs inside the user's server, as the user; these tests start exactly that
(no hub in between) and talk to it with a token, or with a browser-like cookie session."""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from .harness import REPO, free_port


class UserServer:
    def __init__(self, user: str = "alice", roots: list[dict] | None = None, extra_args: tuple = (),
                 env: dict | None = None):
        self.user = user
        pw = pwd.getpwnam(user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.home = Path(tempfile.mkdtemp(prefix=f"ink-files-{user}-"))
        os.chown(self.home, self.uid, self.gid)
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.api = self.url + "ink/api/files/"
        self.roots = roots or []
        self.extra_args = extra_args
        self.env = env or {}
        self.proc = None
        self.log = self.home.parent / f"{self.home.name}.log"

    def start(self) -> UserServer:
        env = {"PATH": f"{REPO}/.venv/bin:/usr/bin:/bin", "HOME": str(self.home), "USER": self.user,
               "LANG": "C.UTF-8", "JUPYTERHUB_USER": self.user, "JUPYTERHUB_BASE_URL": "/",
               "INK_STORAGE_ROOTS": json.dumps(self.roots), **self.env}
        argv = ["/usr/sbin/runuser", "-u", self.user, "--", "env", "-i",
                *[f"{k}={v}" for k, v in env.items()],
                f"{REPO}/.venv/bin/jupyter", "server", "--no-browser", f"--port={self.port}",
                "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.home}",
                *self.extra_args]
        self.logfile = open(self.log, "w")
        self.proc = subprocess.Popen(argv, stdout=self.logfile, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180  # a state wait: a loaded machine starts servers slowly
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "api/status", headers=self.auth, timeout=1).ok:
                    return self
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"user server did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def auth(self) -> dict:
        return {"Authorization": f"token {self.token}"}

    def get(self, endpoint: str, **kw):
        return requests.get(self.api + endpoint, headers={**self.auth, **kw.pop("headers", {})}, timeout=30, **kw)

    def post(self, endpoint: str, body=None, **kw):
        return requests.post(self.api + endpoint, headers={**self.auth, **kw.pop("headers", {})}, json=body,
                             timeout=30, **kw)

    def as_user(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command as the user (to create files the way the user would)."""
        return subprocess.run(["/usr/sbin/runuser", "-u", self.user, "--", *argv], check=check,
                              capture_output=True, text=True)

    def write(self, relative: str, data: bytes | str = b"") -> Path:
        path = self.home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        for p in [path, *path.parents]:
            if p == self.home.parent:
                break
            os.chown(p, self.uid, self.gid)
        return path

    def browser_session(self) -> requests.Session:
        """A cookie session like a browser's: logs in with the token once, then uses the cookie
        (and must send the _xsrf cookie's value back on every change)."""
        s = requests.Session()
        r = s.get(self.url + f"ink/files?token={self.token}", timeout=30)
        r.raise_for_status()
        assert "_xsrf" in s.cookies, "the server sets an _xsrf cookie when it renders a page"
        return s

    def xsrf_from_page(self, session: requests.Session) -> str:
        page = session.get(self.url + "ink/files", timeout=30).text
        return json.loads(re.search(r'id="ink-files-config" type="application/json">(.*?)</script>', page, re.S).group(1))["xsrf"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        if getattr(self, "logfile", None):
            self.logfile.close()
        shutil.rmtree(self.home, ignore_errors=True)
