"""XRootD storage (EOS-style sites): list and stream ``root://`` paths with the XRootD client.

Sites whose user storage is EOS reach it through XRootD rather than a mounted file system. A
storage root with a ``url`` (``root://eos.example.org//eos/user``) makes those paths browsable
and downloadable in the file manager, read-only. The client calls block, so the handlers run
them in a worker thread; the server's own credentials (e.g. the Kerberos ticket in
``KRB5CCNAME``) authenticate, exactly as ``xrdcp`` would for the user.
"""

from __future__ import annotations

import posixpath
import re
import stat as statmod
from collections.abc import Iterator

from .listing import MAX_LIMIT, SORT_KEYS
from .roots import FilesError, Root, Roots

URL = re.compile(r"^root://(?P<host>[A-Za-z0-9.-]+(?::\d{1,5})?)/(?P<path>/.*)$")
CHUNK = 4 << 20


def _client():
    try:
        from XRootD import client
        from XRootD.client.flags import DirListFlags, StatInfoFlags
    except ImportError:
        raise FilesError(501, "path: XRootD storage needs the XRootD client (pip install 'ink-hub[xrootd]')") from None
    return client, DirListFlags, StatInfoFlags


def split(url: str) -> tuple[str, str]:
    """``root://host:port//a/b`` → (``root://host:port``, ``/a/b``), normalised; ``..`` refused."""
    match = URL.match(url)
    if not match or "\0" in url:
        raise FilesError(400, "path: not a root://host//path URL")
    path = match.group("path")
    if any(part == ".." for part in path.split("/")):
        raise FilesError(403, "path: '..' is not allowed in XRootD paths")
    return f"root://{match.group('host')}", posixpath.normpath(path)


def resolve(roots: Roots, url: str) -> tuple[Root, str, str]:
    """The XRootD root that ``url`` lies in, its server and its path; 403 outside every root."""
    server, path = split(url)
    for root in roots.all:
        if not root.url:
            continue
        root_server, root_path = split(root.url)
        if root_server == server and (path == root_path or path.startswith(root_path.rstrip("/") + "/")):
            return root, server, path
    raise FilesError(403, f"path: {url} is outside the allowed places")


def _check(status, what: str) -> None:
    if status.ok:
        return
    message = status.message or "XRootD error"
    code = 404 if status.errno in (3011, 2) or "No such file" in message else (
        403 if status.errno in (3010, 13) or "ermission" in message else 502)
    raise FilesError(code, f"path: {what}: {message.strip()}")


def _entry(server: str, directory: str, name: str, info, flags_cls) -> dict:
    is_dir = bool(info.flags & flags_cls.IS_DIR)
    return {"name": name, "path": f"{server}/{posixpath.join(directory, name)}",
            "type": "directory" if is_dir else "file", "link": False, "size": info.size,
            "mtime": info.modtime, "perms": statmod.filemode((statmod.S_IFDIR if is_dir else statmod.S_IFREG) | 0o444),
            "owner": "", "group": ""}


def stat(server: str, path: str) -> dict:
    client, _, flags = _client()
    status, info = client.FileSystem(server).stat(path)
    _check(status, path)
    return _entry(server, posixpath.dirname(path), posixpath.basename(path) or path, info, flags)


def list_directory(server: str, path: str, *, offset: int = 0, limit: int = 200, sort: str = "name",
                   order: str = "asc", name_filter: str = "", hidden: bool = False) -> dict:
    if sort not in SORT_KEYS or order not in ("asc", "desc") or not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise FilesError(400, "sort, order, offset, limit: see /ink/api/files/list")
    client, dirflags, flags = _client()
    status, listing = client.FileSystem(server).dirlist(path, dirflags.STAT)
    _check(status, path)
    needle = name_filter.casefold()
    rows = []
    for item in listing or []:
        if (not hidden and item.name.startswith(".")) or (needle and needle not in item.name.casefold()):
            continue
        rows.append(_entry(server, path, item.name, item.statinfo, flags))
    key = {"name": lambda e: e["name"].casefold(), "size": lambda e: e["size"], "mtime": lambda e: e["mtime"]}[sort]
    rows.sort(key=key, reverse=order == "desc")
    rows.sort(key=lambda e: e["type"] != "directory")
    return {"path": f"{server}/{path}", "entries": rows[offset:offset + limit], "total": len(rows),
            "offset": offset, "limit": limit, "writable": False}


def read_range(server: str, path: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start .. end`` (inclusive) of a file, in chunks."""
    client, _, _ = _client()
    f = client.File()
    status, _ = f.open(f"{server}/{path}")
    _check(status, path)
    try:
        position = start
        while position <= end:
            status, data = f.read(position, min(CHUNK, end - position + 1))
            _check(status, path)
            if not data:
                return
            position += len(data)
            yield data
    finally:
        f.close()
