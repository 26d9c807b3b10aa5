"""Which paths the file manager may touch, and turning a path from the browser into a safe one.

The server runs as the user, so the operating system already decides what the user may read
and write. The roots add what the OS cannot: the file manager stays inside the places the site
meant to expose (the home directory and configured storage such as /eos or /lustre), a root
the site marks read-only is never written through this API even where the OS would allow it,
and a symlink inside a root cannot lead the browser out of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tornado.web import HTTPError


class FilesError(HTTPError):
    """An error the API reports as ``{"message": ...}`` with an HTTP status (never a traceback)."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message.replace("%", "%%"))
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Root:
    """One place the file manager shows in its side list."""

    name: str
    path: str  # absolute, symlinks resolved
    read_only: bool = False
    url: str | None = None  # root://host//path for XRootD roots

    def as_json(self) -> dict:
        return {"name": self.name, "path": self.url or self.path, "read_only": self.read_only,
                "kind": "xrootd" if self.url else "posix"}


@dataclass(frozen=True)
class Resolved:
    """A path that passed the checks: the real path and the root it lies in."""

    path: str  # absolute, normalised; symlinks inside it resolved
    root: Root

    @property
    def writable(self) -> bool:
        return not self.root.read_only


def check_name(name: str, field: str = "name") -> str:
    """A single path component typed by the user (new file, folder, rename target)."""
    if not isinstance(name, str) or not name or name in (".", ".."):
        raise FilesError(400, f"{field}: a file name is needed")
    if "/" in name or "\0" in name:
        raise FilesError(400, f"{field}: a file name cannot contain '/' or NUL")
    if len(name.encode()) > 255:
        raise FilesError(400, f"{field}: longer than 255 bytes")
    return name


class Roots:
    """The allowed roots of one user's server; :meth:`resolve` is the only way in."""

    def __init__(self, home: str, extra: list[Root] = ()):
        home_root = Root("Home", os.path.realpath(home))
        self.all: list[Root] = [home_root, *extra]
        self.home = home_root

    def posix_roots(self) -> list[Root]:
        return [r for r in self.all if r.url is None]

    def root_for_url(self, url: str) -> Root | None:
        for root in self.all:
            if root.url and (url == root.url or url.startswith(root.url.rstrip("/") + "/")):
                return root
        return None

    def resolve(self, path: str, field: str = "path", must_exist: bool = True) -> Resolved:
        """Turn ``path`` (absolute, or relative to home) into a real path inside a root.

        Refused with 400: non-strings, NUL bytes, over-long paths. Refused with 403: anything
        whose real location (after following every symlink, including the last component when it
        exists) is outside all roots. 404 when ``must_exist`` and it does not exist.
        """
        if not isinstance(path, str) or path == "":
            raise FilesError(400, f"{field}: a path is needed")
        if "\0" in path:
            raise FilesError(400, f"{field}: a path cannot contain NUL")
        if len(path.encode()) > 4096:
            raise FilesError(400, f"{field}: longer than 4096 bytes")
        if path == "~" or path.startswith("~/"):
            path = self.home.path + path[1:]
        joined = path if path.startswith("/") else os.path.join(self.home.path, path)
        # The parent is resolved through symlinks; the last component too when it exists
        # (a dangling symlink or a new name stays as typed, so that creating it cannot escape).
        normal = os.path.normpath(joined)
        parent, leaf = os.path.split(normal)
        real_parent = os.path.realpath(parent)
        candidate = os.path.join(real_parent, leaf) if leaf else real_parent
        if os.path.lexists(candidate):
            if os.path.islink(candidate):
                target = os.path.realpath(candidate)
                if self.root_of(target) is None:
                    raise FilesError(403, f"{field}: {path} is a link that leads outside the allowed places")
            elif os.path.exists(candidate):
                candidate = os.path.realpath(candidate)
        elif must_exist:
            root = self.root_of(candidate)
            if root is None:
                raise FilesError(403, f"{field}: {path} is outside the allowed places")
            raise FilesError(404, f"{field}: {path} does not exist")
        root = self.root_of(candidate)
        if root is None:
            raise FilesError(403, f"{field}: {path} is outside the allowed places")
        return Resolved(candidate, root)

    def resolve_writable(self, path: str, field: str = "path", must_exist: bool = True) -> Resolved:
        resolved = self.resolve(path, field, must_exist)
        if not resolved.writable:
            raise FilesError(403, f"{field}: {resolved.root.name} is read-only")
        return resolved

    def root_of(self, real: str) -> Root | None:
        best = None
        for root in self.posix_roots():
            if real == root.path or real.startswith(root.path.rstrip("/") + "/"):
                if best is None or len(root.path) > len(best.path):
                    best = root
        return best


#: request header that confines one request to a folder (the MCP server's ``--workspace``)
WITHIN_HEADER = "X-Ink-Within"


class ConfinedRoots:
    """The same roots, seen through one folder: what an agent's workspace may reach.

    A client that was told to stay in one folder (``ink mcp --workspace``) sends it with every
    request; the check happens here, on the server, after every symlink is followed, so neither
    ``..`` nor a link planted inside the folder leads out of it. Anything outside is 403 naming
    the workspace. The folder itself must lie in one of the roots (it is resolved the same way).
    """

    def __init__(self, roots: Roots, within: str):
        self.inner = roots
        where = roots.resolve(within, WITHIN_HEADER)
        if not os.path.isdir(where.path):
            raise FilesError(400, f"{WITHIN_HEADER}: {within} is not a folder")
        self.path = where.path
        self.root = where.root
        self.home = Root("Workspace", self.path, where.root.read_only)
        self.all = [self.home]

    def _inside(self, real: str) -> bool:
        return real == self.path or real.startswith(self.path.rstrip("/") + "/")

    def posix_roots(self) -> list[Root]:
        return [self.home]

    def root_for_url(self, url: str) -> Root | None:
        return None  # XRootD roots are outside any POSIX workspace

    def root_of(self, real: str) -> Root | None:
        return self.home if self._inside(real) else None

    def resolve(self, path: str, field: str = "path", must_exist: bool = True) -> Resolved:
        if isinstance(path, str) and not path.startswith(("/", "~")) and path != "":
            path = os.path.join(self.path, path)  # relative paths are relative to the workspace
        resolved = self.inner.resolve(path, field, must_exist)
        # the link itself and where it leads must both stay inside
        if not (self._inside(resolved.path) and self._inside(os.path.realpath(resolved.path))):
            raise FilesError(403, f"{field}: {path} is outside the workspace {self.path}")
        return Resolved(resolved.path, Root("Workspace", self.path, resolved.root.read_only))

    def resolve_writable(self, path: str, field: str = "path", must_exist: bool = True) -> Resolved:
        resolved = self.resolve(path, field, must_exist)
        if not resolved.writable:
            raise FilesError(403, f"{field}: {self.root.name} is read-only")
        return resolved
