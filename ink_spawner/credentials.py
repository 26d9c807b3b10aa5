"""Job side of session credentials: the user's Kerberos ticket as a private credential cache.

The hub hands a starting session the ticket in ``$INK_KRB5_CCACHE`` (base64; Slurm keeps a
job's environment in root-only state, HTCondor gets it from the 0600 ``$INK_ENV_FILE``).
``ink-session`` writes it to a 0600 file in a fresh 0700 directory on the node, points
``KRB5CCNAME`` at it, and re-executes itself without the variable (``/proc/PID/environ`` keeps
the environment a process started with). While the session runs, a thread asks the hub every
``$INK_CREDENTIALS_INTERVAL`` seconds for the current ticket (the hub renews it) with the
server's own token and replaces the file atomically; a warning from the hub (the ticket cannot
be renewed any more) goes to the session's log. The directory is removed when the session ends.

Job side: standard library only.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.request

ENV_CCACHE = "INK_KRB5_CCACHE"
ENV_INTERVAL = "INK_CREDENTIALS_INTERVAL"
ENV_DIR = "INK_KRB5_DIR"
CREDENTIALS_PATH = "ink/credentials"


def write_private(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; the file is 0600 from its first byte."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def install_ccache() -> str | None:
    """Move the ticket from the environment into a private ccache; return its path."""
    encoded = os.environ.pop(ENV_CCACHE, None)
    if not encoded:
        return None
    directory = tempfile.mkdtemp(prefix="ink-krb5-")  # 0700, node-local
    path = os.path.join(directory, "ccache")
    write_private(path, base64.b64decode(encoded))
    os.environ["KRB5CCNAME"] = f"FILE:{path}"
    os.environ[ENV_DIR] = directory
    return path


def fetch(api_url: str, token: str, timeout: float = 20) -> dict:
    """GET the session's current credentials from the hub (raises urllib errors)."""
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/{CREDENTIALS_PATH}",
        headers={"Authorization": f"token {token}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


class Refresher(threading.Thread):
    """Keep the session's ccache current while the session runs."""

    def __init__(self, api_url: str, token: str, path: str, interval: float):
        super().__init__(name="ink-credentials", daemon=True)
        self.api_url, self.token, self.path, self.interval = api_url, token, path, interval
        self.stopped = threading.Event()
        self.last_warning = ""
        self.last_error = ""

    def refresh_once(self) -> None:
        try:
            data = fetch(self.api_url, self.token)
        except (urllib.error.URLError, OSError, ValueError) as e:
            detail = f"HTTP {e.code}" if isinstance(e, urllib.error.HTTPError) else str(e)
            if detail != self.last_error:
                log(f"cannot fetch the current Kerberos ticket from the hub ({detail}); will retry")
            self.last_error = detail
            return
        self.last_error = ""
        ccache = data.get("ccache")
        if ccache:
            write_private(self.path, base64.b64decode(ccache))
        warning = data.get("warning") or ""
        if warning and warning != self.last_warning:
            log(f"WARNING: {warning}")
        self.last_warning = warning

    def run(self) -> None:
        # a first fetch at once: a ticket that cannot be renewed is reported at start
        while True:
            self.refresh_once()
            if self.stopped.wait(self.interval):
                return


def log(message: str) -> None:
    print(f"ink-session: {message}", flush=True)


def activate(api_url: str | None, token: str | None) -> Refresher | None:
    """In the re-executed ink-session: start refreshing the ccache and remove it at exit."""
    directory = os.environ.get(ENV_DIR)
    ccname = os.environ.get("KRB5CCNAME", "")
    if not directory or not ccname.startswith(f"FILE:{directory}/"):
        return None
    atexit.register(shutil.rmtree, directory, True)
    try:
        interval = float(os.environ.get(ENV_INTERVAL) or 0)
    except ValueError:
        interval = 0
    log(f"Kerberos credential cache in {directory} (mode 0600)")
    if interval <= 0 or not api_url or not token:
        return None
    refresher = Refresher(api_url, token, ccname[len("FILE:"):], interval)
    refresher.start()
    return refresher


if __name__ == "__main__":  # pragma: no cover
    sys.exit("ink_spawner.credentials is used by ink-session")
