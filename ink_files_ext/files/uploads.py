"""Chunked, resumable uploads that never leave a half-written file under the final name.

A browser (or ``ink files put``) first declares the upload (target path, size), then sends the
bytes in chunks with ``Content-Range``; a dropped connection loses at most the chunk in flight:
the client asks for the offset and goes on from there. Bytes go to a hidden part file next to
the target (same file system, so finishing is a rename, atomic); only the last byte moves it to
the final name. Disk-full and quota errors end the upload with a 507 naming the cause, and the
part file is removed so that the space comes back.
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from dataclasses import dataclass, field

from .roots import FilesError

PART_PREFIX = ".ink-upload-"
ABANDONED_AFTER_S = 24 * 3600


def storage_error(e: OSError, path: str) -> FilesError:
    """The error a user should see for a failed write."""
    if e.errno == errno.ENOSPC:
        return FilesError(507, f"no space left on the file system holding {os.path.dirname(path)}")
    if e.errno == errno.EDQUOT:
        return FilesError(507, f"disk quota exceeded writing {path}")
    if e.errno in (errno.EACCES, errno.EPERM):
        return FilesError(403, f"permission denied writing {path}")
    if e.errno == errno.ENOENT:
        return FilesError(404, f"path: the folder {os.path.dirname(path)} does not exist")
    if e.errno == errno.EROFS:
        return FilesError(403, f"{path} is on a read-only file system")
    return FilesError(500, f"cannot write {path}: {e.strerror}")


@dataclass
class Upload:
    id: str
    path: str  # final name
    size: int
    overwrite: bool
    part: str
    offset: int = 0
    touched: float = field(default_factory=time.monotonic)

    def as_json(self) -> dict:
        return {"id": self.id, "path": self.path, "size": self.size, "offset": self.offset,
                "done": self.offset == self.size}


class Uploads:
    """The uploads in flight in this server, kept in memory: a restarted server forgets them,
    and removes their day-old part files when it next uploads into the same directory."""

    def __init__(self, max_size: int = 0):
        self.max_size = max_size  # bytes, 0 = no limit
        self._uploads: dict[str, Upload] = {}
        self._swept_dirs: set[str] = set()

    def create(self, path: str, size: int, overwrite: bool) -> Upload:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FilesError(400, "size: a whole number of bytes, 0 or more")
        if self.max_size and size > self.max_size:
            raise FilesError(413, f"size: {size} bytes is more than this site's upload limit of {self.max_size} bytes")
        if os.path.lexists(path) and not overwrite:
            raise FilesError(409, f"path: {path} already exists (set overwrite to replace it)")
        if os.path.isdir(path):
            raise FilesError(409, f"path: {path} is a directory")
        self.sweep()
        self._sweep_part_files(os.path.dirname(path))
        upload_id = secrets.token_urlsafe(16)
        part = os.path.join(os.path.dirname(path), f"{PART_PREFIX}{upload_id}.part")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        except OSError as e:
            raise storage_error(e, path) from None
        upload = Upload(upload_id, path, size, overwrite, part)
        self._uploads[upload_id] = upload
        if size == 0:
            self.finish(upload)
        return upload

    def get(self, upload_id: str) -> Upload:
        upload = self._uploads.get(upload_id)
        if upload is None:
            raise FilesError(404, "upload: no such upload (finished, cancelled, or this server restarted)")
        upload.touched = time.monotonic()
        return upload

    def write(self, upload: Upload, fd: int, data: bytes) -> None:
        """Append ``data`` at the upload's offset through the open part file ``fd``."""
        if upload.offset + len(data) > upload.size:
            raise FilesError(413, f"body: more bytes than the declared size ({upload.size})")
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as e:
            self.cancel(upload)
            raise storage_error(e, upload.path) from None
        upload.offset += len(data)

    def open_part(self, upload: Upload) -> int:
        """Open the part file at the current offset (anything after it, from a chunk cut off in
        the middle, is dropped so the client can resend it)."""
        try:
            fd = os.open(upload.part, os.O_WRONLY)
            os.ftruncate(fd, upload.offset)
            os.lseek(fd, upload.offset, os.SEEK_SET)
            return fd
        except FileNotFoundError:
            self._uploads.pop(upload.id, None)
            raise FilesError(410, "upload: its part file was removed; start the upload again") from None
        except OSError as e:
            raise storage_error(e, upload.path) from None

    def finish(self, upload: Upload) -> None:
        """Move the complete part file to the final name (atomically; never over a file that
        appeared meanwhile unless overwrite was asked)."""
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.chmod(upload.part, 0o666 & ~umask)
            if upload.overwrite:
                os.replace(upload.part, upload.path)
            else:
                try:
                    os.link(upload.part, upload.path)  # fails if the name exists
                except FileExistsError:
                    self.cancel(upload)
                    raise FilesError(409, f"path: {upload.path} appeared during the upload") from None
                except OSError:  # file systems without hard links
                    if os.path.lexists(upload.path):
                        self.cancel(upload)
                        raise FilesError(409, f"path: {upload.path} appeared during the upload") from None
                    os.rename(upload.part, upload.path)
                else:
                    os.unlink(upload.part)
        except OSError as e:
            self.cancel(upload)
            raise storage_error(e, upload.path) from None
        self._uploads.pop(upload.id, None)

    def cancel(self, upload: Upload) -> None:
        self._uploads.pop(upload.id, None)
        try:
            os.unlink(upload.part)
        except FileNotFoundError:
            pass

    def _sweep_part_files(self, directory: str) -> None:
        """Part files of uploads a previous server left behind (this one knows only its own):
        removed when a day old, the first time this server uploads into that directory."""
        if directory in self._swept_dirs:
            return
        self._swept_dirs.add(directory)
        mine = {u.part for u in self._uploads.values()}
        cutoff = time.time() - ABANDONED_AFTER_S
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if (entry.name.startswith(PART_PREFIX) and entry.name.endswith(".part")
                            and entry.path not in mine and entry.stat(follow_symlinks=False).st_mtime < cutoff):
                        os.unlink(entry.path)
        except OSError:
            pass

    def sweep(self) -> None:
        """Forget uploads nobody touched for a day, and remove their part files."""
        now = time.monotonic()
        for upload in list(self._uploads.values()):
            if now - upload.touched > ABANDONED_AFTER_S:
                self.cancel(upload)


def parse_content_range(header: str | None, upload: Upload) -> tuple[int, int]:
    """``bytes A-B/TOTAL`` → (A, B+1); TOTAL must be the declared size."""
    if not header:
        raise FilesError(400, "Content-Range: header needed (bytes START-END/TOTAL)")
    try:
        unit, _, rest = header.partition(" ")
        span, _, total = rest.partition("/")
        start_s, _, end_s = span.partition("-")
        start, end, total_n = int(start_s), int(end_s), int(total)
    except ValueError:
        raise FilesError(400, "Content-Range: expected bytes START-END/TOTAL") from None
    if unit != "bytes" or start < 0 or end < start or total_n != upload.size or end >= upload.size:
        raise FilesError(400, f"Content-Range: must be bytes START-END/{upload.size} within the declared size")
    return start, end + 1
