"""HTTP side of ``ink``: the hub's REST API and the user's portal server, with one token.

The portal server serves the job and file APIs. When it is not running, the hub answers a
request for it with 424; the client then starts it (``POST /hub/api/users/NAME/servers/portal``,
which needs the token's ``servers`` scope), waits until it is ready and repeats the request.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import requests

PORTAL = "portal"
JOBS = "/ink/api/v1"
FILES = "/ink/api/files"

# exit codes (documented in `ink --help`)
EXIT_OK = 0
EXIT_FAILED = 1  # the job failed or was cancelled (when waiting for it)
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_AUTH = 3  # not logged in, or the token is invalid, expired or revoked (401)
EXIT_FORBIDDEN = 4  # the token lacks a scope or the right (403)
EXIT_NOT_FOUND = 5  # no such job, file or session (404)
EXIT_REFUSED = 6  # the request was refused (400, 409, 413, 416, 422)
EXIT_UNAVAILABLE = 7  # the hub, the portal or the scheduler is unreachable or failed (5xx, network)


class InkError(Exception):
    """A failure to report with a message and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_UNAVAILABLE, status: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status


def exit_code_for(status: int) -> int:
    if status == 401:
        return EXIT_AUTH
    if status == 403:
        return EXIT_FORBIDDEN
    if status == 404:
        return EXIT_NOT_FOUND
    if 400 <= status < 500 and status != 424:
        return EXIT_REFUSED
    return EXIT_UNAVAILABLE


def error_message(response: requests.Response) -> str:
    try:
        data = response.json()
        message = data.get("message") or data.get("error") or response.reason
    except ValueError:
        message = response.reason or response.text[:200]
    return f"HTTP {response.status_code}: {message}"


class Client:
    """One hub, one token, one user."""

    def __init__(self, hub: str, token: str, user: str | None = None, timeout: float = 60,
                 waiter=None, api_url: str | None = None, portal_url: str | None = None,
                 session: requests.Session | None = None, portal_headers: dict | None = None):
        """``api_url`` and ``portal_url`` replace ``HUB/hub/api`` and ``HUB/user/NAME/portal``:
        the portal's own MCP endpoint calls the hub's internal API address and its own server
        directly, with the caller's token (the same checks, one proxy hop less).
        ``portal_headers`` go with every request to the portal only (the MCP endpoint's key of
        a token it has just checked, ``X-Ink-Checked``)."""
        if not hub or not token:
            raise InkError("not logged in: run `ink login` (or set INK_HUB_URL and INK_TOKEN)", EXIT_AUTH)
        self.hub = hub.rstrip("/")
        self.api_url = (api_url or f"{self.hub}/hub/api").rstrip("/")
        self.portal_url = portal_url.rstrip("/") if portal_url else None
        self.portal_headers = dict(portal_headers or {})
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.session.headers["User-Agent"] = "ink-cli"
        self._user = user
        self._portal_seen = False
        self.waiter = waiter  # a callable(message, fraction|None) for progress while waiting

    # ---- plumbing -----------------------------------------------------------------------------

    def request(self, method: str, url: str, ok=(200, 201, 202, 204, 206), **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.RequestException as e:
            raise InkError(f"cannot reach {self.hub}: {e}", EXIT_UNAVAILABLE) from None
        if response.status_code not in ok:
            raise InkError(error_message(response), exit_code_for(response.status_code),
                           response.status_code)
        return response

    def hub_api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.request(method, f"{self.api_url}{path}", **kwargs)

    def whoami(self) -> dict:
        return self.hub_api("GET", "/user").json()

    @property
    def user(self) -> str:
        if self._user is None:
            self._user = self.whoami()["name"]
        return self._user

    def server_url(self, name: str, path: str) -> str:
        if name == PORTAL and self.portal_url:
            return self.portal_url + path
        return f"{self.hub}/user/{quote(self.user)}/{quote(name)}{path}"

    def portal(self, method: str, path: str, **kwargs) -> requests.Response:
        """A request to the portal server, started first if it is not running."""
        url = self.server_url(PORTAL, path)
        ok = kwargs.pop("ok", (200, 201, 202, 204, 206))
        if self.portal_headers:
            kwargs["headers"] = {**self.portal_headers, **(kwargs.get("headers") or {})}
        if method != "GET" and not self._portal_seen:
            # the hub answers 424 "not running" only to GET; probe before a POST, PUT or DELETE
            self.portal("GET", f"{JOBS}/", ok=(200, 401, 403))
        self._portal_seen = True
        # without a proxy route (server stopped) the hub redirects /user/... to /hub/user/...,
        # which answers 424 to a GET; a POST is never replayed through a redirect
        follow = method in ("GET", "HEAD")
        try:
            return self.request(method, url, ok=ok, allow_redirects=follow, **kwargs)
        except InkError as e:
            if e.status in (301, 302, 303, 307, 308) and not follow:
                self.portal("GET", f"{JOBS}/", ok=(200, 401, 403))  # starts it if needed
                return self.request(method, url, ok=ok, allow_redirects=False, **kwargs)
            if e.status not in (424, 503) or not self._portal_down(e):
                raise
        self.start_session(PORTAL, {})
        return self.request(method, url, ok=ok, allow_redirects=follow, **kwargs)

    def _portal_down(self, error: InkError) -> bool:
        if error.status == 424:
            return True
        server = self.servers().get(PORTAL)
        return not (server and server.get("ready"))

    # ---- sessions ------------------------------------------------------------------------------

    def servers(self) -> dict:
        return self.hub_api("GET", f"/users/{quote(self.user)}").json().get("servers") or {}

    def start_session(self, name: str, options: dict, wait: bool = True, timeout: float = 900) -> dict:
        """Start a named server and (by default) wait until it is ready, reporting progress."""
        r = self.hub_api("POST", f"/users/{quote(self.user)}/servers/{quote(name)}", json=options,
                         ok=(201, 202, 400))
        if r.status_code == 400:
            message = error_message(r)
            if "already" not in message and "pending" not in message:
                raise InkError(message, EXIT_REFUSED, 400)
        if not wait:
            return self.servers().get(name) or {}
        return self.wait_ready(name, timeout)

    def wait_ready(self, name: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        url = f"{self.api_url}/users/{quote(self.user)}/servers/{quote(name)}/progress"
        try:  # the spawn's own progress events ("queued, position 3", "running on wn042", ...)
            with self.session.get(url, stream=True, timeout=(10, timeout)) as r:
                if r.status_code == 200:
                    for line in r.iter_lines():
                        if not line.startswith(b"data:"):
                            continue
                        event = json.loads(line[5:])
                        if self.waiter and event.get("message") != last:
                            last = event.get("message")
                            self.waiter(last, (event.get("progress") or 0) / 100)
                        if event.get("failed"):
                            raise InkError(f"{name} failed to start: {event.get('message')}",
                                           EXIT_UNAVAILABLE)
                        if event.get("ready"):
                            break
        except requests.RequestException:
            pass  # fall back to polling the server model
        while time.monotonic() < deadline:
            server = self.servers().get(name)
            if server and server.get("ready"):
                return server
            if not server or not server.get("pending"):
                raise InkError(f"{name} is not starting (it may have failed: see the hub)",
                               EXIT_UNAVAILABLE)
            time.sleep(0.5)
        raise InkError(f"{name} was not ready after {timeout:g} s", EXIT_UNAVAILABLE)

    def stop_session(self, name: str, wait: bool = True, timeout: float = 120) -> None:
        self.hub_api("DELETE", f"/users/{quote(self.user)}/servers/{quote(name)}", ok=(202, 204))
        deadline = time.monotonic() + timeout
        while wait and time.monotonic() < deadline:
            if name not in self.servers():
                return
            if self.waiter:
                self.waiter(f"stopping {name}", None)
            time.sleep(0.5)
        if wait:
            raise InkError(f"{name} still listed after {timeout:g} s", EXIT_UNAVAILABLE)

    # ---- jobs ------------------------------------------------------------------------------------

    def submit(self, request: dict) -> dict:
        return self.portal("POST", f"{JOBS}/jobs", json=request).json()

    def jobs(self, state: str = "all", limit: int = 200) -> list[dict]:
        return self.portal("GET", f"{JOBS}/jobs", params={"state": state, "limit": limit}).json()["jobs"]

    def job(self, key: str) -> dict:
        return self.portal("GET", f"{JOBS}/jobs/{quote(key, safe='')}").json()

    def cancel(self, key: str) -> dict:
        return self.portal("DELETE", f"{JOBS}/jobs/{quote(key, safe='')}").json()

    def output(self, key: str, stream: str, offset: int = 0, limit: int | None = None) -> tuple[bytes, int, str]:
        params = {"offset": offset} if limit is None else {"offset": offset, "limit": limit}
        r = self.portal("GET", f"{JOBS}/jobs/{quote(key, safe='')}/{stream}", params=params)
        return r.content, int(r.headers.get("X-Ink-Size", "0")), r.headers.get("X-Ink-Job-State", "")

    # ---- files (the file manager's API) --------------------------------------------------------

    def list_dir(self, path: str, hidden: bool = False, headers: dict | None = None,
                 most: int | None = None) -> dict:
        """All entries (or the first ``most``), page by page."""
        entries, offset, result = [], 0, {}
        while True:
            result = self.portal("GET", f"{FILES}/list", headers=headers or {}, params={
                "path": path, "offset": offset, "limit": min(1000, most or 1000),
                "hidden": int(hidden)}).json()
            entries += result.get("entries", [])
            offset += len(result.get("entries", []))
            if not result.get("entries") or offset >= result.get("total", 0) or (most and offset >= most):
                break
        result["entries"] = entries
        return result

    def stat(self, path: str, headers: dict | None = None) -> dict:
        return self.portal("GET", f"{FILES}/stat", params={"path": path}, headers=headers or {}).json()

    def usage(self, headers: dict | None = None) -> dict:
        return self.portal("GET", f"{FILES}/usage", headers=headers or {}).json()

    def cluster(self) -> dict:
        """Running and queued jobs per partition or group (the hub's shared sampler)."""
        return self.hub_api("GET", "/ink/cluster").json()
