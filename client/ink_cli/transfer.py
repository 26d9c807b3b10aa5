"""File transfers over the file manager's API, resumable both ways.

Download: into ``LOCAL.part``; a second run continues where the first stopped with an HTTP
``Range`` request (a server that answers 200 instead of 206 restarts it), and the file gets
its name only when complete. Upload: ``POST /ink/api/files/uploads`` opens an upload, chunks
go with ``PUT .../uploads/ID`` and ``Content-Range``; after a failed chunk the client asks the
server how far it got (``GET .../uploads/ID``) and continues from there.
"""

from __future__ import annotations

import os
import time
from urllib.parse import quote

from .api import FILES, EXIT_REFUSED, Client, InkError

RETRIES = 3


def chunk_size() -> int:
    """Bytes per upload request (INK_CHUNK_SIZE, default 8 MiB): smaller on flaky links."""
    value = os.environ.get("INK_CHUNK_SIZE", "")
    return int(value) if value.isdigit() and int(value) > 0 else 8 << 20


def download(client: Client, remote: str, local: str, bar_factory) -> dict:
    info = client.stat(remote)
    if info.get("type") == "directory":
        raise InkError(f"{remote} is a directory (download single files)", EXIT_REFUSED)
    if os.path.isdir(local):
        local = os.path.join(local, info.get("name") or os.path.basename(remote.rstrip("/")))
    part = local + ".part"
    size = int(info.get("size") or 0)
    done = os.path.getsize(part) if os.path.exists(part) else 0
    if done > size:
        os.unlink(part)
        done = 0
    with bar_factory(total=size, initial=done, desc=os.path.basename(local)) as bar:
        for attempt in range(RETRIES + 1):
            headers = {"Range": f"bytes={done}-"} if done else {}
            try:
                r = client.portal("GET", f"{FILES}/download", params={"path": remote}, headers=headers,
                                  stream=True, ok=(200, 206, 416))
                if r.status_code == 416:  # nothing left to fetch
                    break
                if r.status_code == 200 and done:
                    done = 0  # the server sent the whole file: start again
                    bar.reset(total=size)
                with open(part, "ab" if done else "wb") as f:
                    for chunk in r.iter_content(1 << 20):
                        f.write(chunk)
                        done += len(chunk)
                        bar.update(len(chunk))
                break
            except (InkError, OSError) as e:
                if attempt == RETRIES or (isinstance(e, InkError) and e.status and e.status < 500):
                    raise
                time.sleep(1 + attempt)
            except Exception as e:  # a dropped connection mid-body (requests' ChunkedEncodingError, ...)
                if attempt == RETRIES:
                    raise InkError(f"download of {remote} failed: {e}") from None
                time.sleep(1 + attempt)
    os.replace(part, local)
    return {"path": remote, "local": os.path.abspath(local), "size": os.path.getsize(local)}


def upload(client: Client, local: str, remote: str, overwrite: bool, bar_factory) -> dict:
    size = os.path.getsize(local)
    if remote.endswith("/") or not remote:
        remote = remote + os.path.basename(local)
    opened = client.portal("POST", f"{FILES}/uploads",
                           json={"path": remote, "size": size, "overwrite": overwrite}).json()
    upload_id, offset = opened["id"], int(opened.get("offset", 0))
    url = f"{FILES}/uploads/{quote(str(upload_id), safe='')}"
    chunk = chunk_size()
    with open(local, "rb") as f, bar_factory(total=size, initial=offset, desc=os.path.basename(local)) as bar:
        failures = 0
        while offset < size and not opened.get("done"):  # an empty file is done at once
            f.seek(offset)
            data = f.read(chunk)
            if not data:
                raise InkError(f"{local} shrank while it was being uploaded", EXIT_REFUSED)
            end = offset + len(data) - 1
            headers = {"Content-Range": f"bytes {offset}-{end}/{size}",
                       "Content-Type": "application/octet-stream"}
            try:
                reply = client.portal("PUT", url, data=data, headers=headers).json()
            except InkError as e:
                failures += 1
                if failures > RETRIES or (e.status and e.status < 500 and e.status != 409):
                    raise
                time.sleep(failures)
                offset = int(client.portal("GET", url).json().get("offset", offset))  # how far it got
                bar.n = offset
                bar.refresh()
                continue
            bar.update(int(reply.get("offset", end + 1)) - offset)
            offset = int(reply.get("offset", end + 1))
            if reply.get("done"):
                break
    return {"path": remote, "local": os.path.abspath(local), "size": size, "upload": upload_id}
