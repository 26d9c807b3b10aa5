"""The samples file: private (0600), JSON lines, bounded in size.

Line one is the header (``{"type": "start", ...}``), then one sample per line, and at the end
``{"type": "end", ...}`` with the job's totals. When the file outgrows ``max_bytes``, every
other sample is dropped (rewritten atomically), so a long job keeps its whole history at half
the resolution instead of losing its beginning; the totals of the end line are exact anyway.
"""

from __future__ import annotations

import json
import os


class Recorder:
    def __init__(self, path: str, max_bytes: int):
        self.path, self.max_bytes = path, max(4096, max_bytes)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        # O_NOFOLLOW: a symlink planted in the job's directory is not followed
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", buffering=1)
        self._size = 0

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        self._file.write(line)
        self._size += len(line)
        if self._size > self.max_bytes:
            self._thin()

    def _thin(self) -> None:
        with open(self.path) as f:
            lines = f.readlines()
        head, samples = lines[:1], lines[1:]
        kept = head + samples[::2]
        tmp = f"{self.path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(kept)
        os.replace(tmp, self.path)
        self._file.close()
        self._file = open(self.path, "a", buffering=1)
        self._size = sum(len(line) for line in kept)

    def close(self) -> None:
        self._file.close()
