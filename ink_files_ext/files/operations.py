"""File operations (blocking; the handlers run them in a worker thread).

Each takes already-resolved paths (see :mod:`.roots`) and turns OS errors into
:class:`~.roots.FilesError` with a message a user can act on.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import zipfile
from collections.abc import Callable, Iterator

from .roots import FilesError, Roots
from .uploads import storage_error

CHUNK = 1 << 20


def _os_error(e: OSError, path: str, verb: str) -> FilesError:
    if isinstance(e, FileExistsError) or e.errno == errno.ENOTEMPTY:
        return FilesError(409, f"{path} already exists")
    if isinstance(e, FileNotFoundError):
        return FilesError(404, f"{path} does not exist")
    if e.errno == errno.ENOTDIR:
        return FilesError(400, f"{path}: a part of it is a file, not a folder")
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS):
        return storage_error(e, path)
    return FilesError(500, f"cannot {verb} {path}: {e.strerror}")


def mkdir(path: str) -> None:
    try:
        os.mkdir(path)
    except OSError as e:
        raise _os_error(e, path, "create") from None


def touch(path: str) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise _os_error(e, path, "create") from None


def _refuse_into_itself(source: str, target: str) -> None:
    if os.path.isdir(source) and not os.path.islink(source) and (
            target == source or target.startswith(source.rstrip("/") + "/")):
        raise FilesError(400, f"to: cannot put {source} inside itself")


def move(source: str, target: str) -> None:
    _refuse_into_itself(source, target)
    if os.path.lexists(target):
        raise FilesError(409, f"to: {target} already exists")
    try:
        os.rename(source, target)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise _os_error(e, target, "move to") from None
        try:
            shutil.move(source, target)  # another file system: copy then delete
        except OSError as e2:
            raise _os_error(e2, target, "move to") from None


def copy(source: str, target: str) -> None:
    """Copy a file or a folder. The copy is made under a hidden name next to the target and
    renamed when complete: a copy that fails half-way (disk full, quota) leaves nothing under
    the final name, and its partial bytes are removed so the space comes back."""
    _refuse_into_itself(source, target)
    if os.path.lexists(target):
        raise FilesError(409, f"to: {target} already exists")
    partial = os.path.join(os.path.dirname(target), f".ink-copy-{secrets.token_hex(6)}.part")
    try:
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, partial, symlinks=True)
        else:
            shutil.copy2(source, partial, follow_symlinks=False)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "appeared during the copy", target)
        os.rename(partial, target)
    except shutil.Error as e:  # an OSError too: first
        _remove_quietly(partial)
        raise _copytree_error(e, target) from None
    except OSError as e:
        _remove_quietly(partial)
        raise _os_error(e, target, "copy to") from None


def _copytree_error(e: shutil.Error, target: str) -> FilesError:
    """copytree collects per-file errors: a full disk among them is a 507, not a 500."""
    for entry in e.args[0] if e.args and isinstance(e.args[0], list) else []:
        why = str(entry[-1]) if isinstance(entry, tuple) else ""
        if "No space left" in why or "Disk quota" in why:
            return storage_error(OSError(errno.ENOSPC if "space" in why else errno.EDQUOT, why), target)
    count = len(e.args[0]) if e.args and isinstance(e.args[0], list) else 1
    return FilesError(500, f"copy to {target} was incomplete: {count} files failed")


def _remove_quietly(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def delete(path: str, roots: Roots) -> None:
    if any(path == r.path for r in roots.posix_roots()):
        raise FilesError(403, f"paths: {path} is a storage root and cannot be deleted")
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)  # does not follow symlinks
        else:
            os.unlink(path)
    except OSError as e:
        raise _os_error(e, path, "delete") from None


class _Sink:
    """A write-only, unseekable file that zipfile writes to; the handler drains it."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0  # all bytes written (zipfile asks tell() for offsets)
        self.pending = 0  # bytes not yet drained

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        self.pending += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self.size

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.pending = 0
        return data


def zip_members(paths: list[str], roots: Roots) -> Iterator[tuple[str, str]]:
    """(file on disk, name in the archive) for every regular file under ``paths``. Symlinks are
    followed only to places inside the roots; others are left out."""
    for top in paths:
        base = os.path.dirname(top.rstrip("/"))
        if not os.path.isdir(top):
            yield top, os.path.relpath(top, base)
            continue
        for directory, dirs, files in os.walk(top, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(directory, name)
                if os.path.islink(full) and roots.root_of(os.path.realpath(full)) is None:
                    continue
                if os.path.isfile(full):
                    yield full, os.path.relpath(full, base)


def zip_stream(paths: list[str], roots: Roots, is_cancelled: Callable[[], bool]) -> Iterator[bytes]:
    """The zip archive of ``paths`` as a sequence of byte chunks, produced as it is read
    (stored, not compressed: physics data does not compress and the CPU is better spent
    streaming). Unreadable files are skipped and listed in ``INK-SKIPPED.txt`` at the end."""
    sink = _Sink()
    skipped = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for full, arcname in zip_members(paths, roots):
            if is_cancelled():
                return
            try:
                with open(full, "rb") as source:
                    info = zipfile.ZipInfo.from_file(full, arcname)
                    with archive.open(info, "w", force_zip64=True) as member:
                        while chunk := source.read(CHUNK):
                            member.write(chunk)
                            if sink.pending >= CHUNK:
                                yield sink.drain()
            except OSError:
                skipped.append(arcname)
            if sink.parts:
                yield sink.drain()
        if skipped:
            archive.writestr("INK-SKIPPED.txt", "Files that could not be read:\n" + "\n".join(skipped) + "\n")
    yield sink.drain()
