"""Chunked, resumable uploads that never leave a half-written file under the final name.

A browser (or ``ink files put``) first declares the upload (target path, size), then sends the
bytes in chunks with ``Content-Range``; a dropped connection loses at most the chunk in flight:
the client asks for the offset and goes on from there. Bytes go to a hidden part file next to
the target (same file system, so finishing is a rename, atomic); only the last byte moves it to
the final name. Disk-full and quota errors end the upload with a 507 naming the cause, and the
part file is removed so that the space comes back.

A chunk is written while it arrives (:class:`ChunkWriter`): 1 MiB blocks go to the part file in
a worker thread while the next block is received, so an upload runs at about the speed of the
slower of network and disk instead of their sum. The upload's offset moves only when a whole
chunk has arrived and is written; a chunk cut off in the middle leaves bytes past the offset,
which the next chunk overwrites (:meth:`Uploads.open_part` truncates them).
"""

from __future__ import annotations

import asyncio
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
    if e.errno == errno.ENOTDIR:
        return FilesError(400, f"path: a part of {os.path.dirname(path)} is a file, not a folder")
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
    writer: object = field(default=None, repr=False)  # the ChunkWriter receiving a chunk now

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


class ChunkWriter:
    """One chunk of an upload, written to the part file while it arrives.

    Made before the body is read (the request's headers are checked then); :meth:`feed` takes
    the body as it comes, :meth:`close` ends it and raises the chunk's error, if any, with the
    whole body read — so the client gets a clean answer, never a connection cut mid-body
    (which a proxy would report as a 503). One block is written in a worker thread while the
    next is received: memory stays at about two blocks, the event loop never writes."""

    BLOCK = 1 << 20

    def __init__(self, uploads: Uploads, upload_id: str, content_range: str | None,
                 content_length: int | None, max_chunk: int):
        self.uploads = uploads
        self.error: FilesError | None = None
        self.upload: Upload | None = None
        self.fd: int | None = None
        self._pending = bytearray()
        self._writing: asyncio.Future | None = None
        self.received = 0
        try:
            self.upload = uploads.get(upload_id)
            self.start, self.end = parse_content_range(content_range, self.upload)
            if content_length is not None and content_length > max_chunk:
                raise FilesError(413, f"body: a chunk is at most {max_chunk} bytes")
            if content_length is not None and content_length != self.end - self.start:
                raise FilesError(400, "Content-Range: its span must equal the body's length")
            if self.start != self.upload.offset:
                raise FilesError(409, f"Content-Range: the upload is at byte {self.upload.offset}, not {self.start}")
        except FilesError as e:
            self.error = e
            self._previous = None
        else:
            # one chunk of an upload at a time, the newest wins: a client resuming after a
            # dropped connection must not wait until the server notices the old one is gone
            self._previous, self.upload.writer = self.upload.writer, self
        self.position = getattr(self, "start", 0)

    async def open(self) -> None:
        if self._previous is not None:
            await self._previous.supersede()
            self._previous = None
        if self.error is None:
            try:
                self.fd = await asyncio.to_thread(self.uploads.open_part, self.upload)
            except FilesError as e:
                self._fail(e)

    def feed(self, data: bytes):
        """Take the next piece of the body. Returns an awaitable when a full block goes to the
        disk (the caller awaits it, so at most one block waits while one is written), else None:
        the common case costs no coroutine per network read."""
        if self.error is not None:
            return None  # read and dropped: the answer comes when the body is complete
        self.received += len(data)
        if self.received > self.end - self.start:
            self._fail(FilesError(400, "Content-Range: its span must equal the body's length"))
            return None
        self._pending += data
        if len(self._pending) >= self.BLOCK:
            return self._flush()
        return None

    async def _flush(self) -> None:
        await self._wait_for_write()
        if self.error is not None or not self._pending:
            return
        block, self._pending = bytes(self._pending), bytearray()
        self._writing = asyncio.ensure_future(asyncio.to_thread(self._pwrite, block, self.position))
        self.position += len(block)

    def _pwrite(self, block: bytes, position: int) -> None:
        view = memoryview(block)
        while view:
            written = os.pwrite(self.fd, view, position)
            view, position = view[written:], position + written

    async def _wait_for_write(self) -> None:
        writing, self._writing = self._writing, None
        if writing is None:
            return
        try:
            await writing
        except OSError as e:
            self.uploads.cancel(self.upload)  # the space comes back; the client must start again
            self._fail(storage_error(e, self.upload.path))

    def _fail(self, error: FilesError) -> None:
        if self.error is None:
            self.error = error
        self._pending = bytearray()

    async def close(self) -> Upload:
        """The body is complete: write the rest, move the offset (and finish the upload on its
        last byte). Raises the chunk's FilesError."""
        try:
            if self.error is None and self.received != self.end - self.start:
                self._fail(FilesError(400, "Content-Range: its span must equal the body's length"))
            await self._flush()
            await self._wait_for_write()
            if self.error is None and self.upload.writer is not self:
                self._fail(FilesError(409, "upload: a newer chunk of this upload took over from this one"))
            if self.error is not None:
                raise self.error
            self.upload.offset = self.end
            if self.upload.offset == self.upload.size:
                await asyncio.to_thread(self._close_fd)
                await asyncio.to_thread(self.uploads.finish, self.upload)
            return self.upload
        finally:
            await self.abandon()

    async def supersede(self) -> None:
        """A newer chunk of the same upload takes over: stop writing (after the block in
        flight, so the two never write at once); this chunk's answer is a 409."""
        self._fail(FilesError(409, "upload: a newer chunk of this upload took over from this one"))
        await self.abandon()

    async def abandon(self) -> None:
        """The connection went away (or the chunk is over): the offset stays where it was."""
        self._pending = bytearray()
        try:
            await self._wait_for_write()
        finally:
            self._close_fd()
            if self.upload is not None and self.upload.writer is self:
                self.upload.writer = None

    def _close_fd(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
