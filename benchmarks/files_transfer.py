"""1 GiB through the file manager vs the same bytes copied locally, and the server's memory.

Download: GET /ink/api/files/download streamed to a file, vs reading the file and writing the
copy locally with the same 1 MiB chunks. Upload: the page's protocol (declare, then 16 MiB
chunks with Content-Range) from a local file, vs the local copy. Throughput ratios are
server/local (1.0 = as fast as a local copy).

Both sides have the same durability policy: neither the local copy nor the server calls fsync;
both end with the bytes in the page cache, and ``os.sync()`` runs before every measurement so
that one measurement's write-back does not slow the next. The server writes a chunk while it
arrives (1 MiB blocks in a worker thread), the local copy in 1 MiB writes. The server's peak RSS (VmHWM) is read before
and after: streaming must not hold the file in memory.

    .venv/bin/python benchmarks/files_transfer.py [--size-mib 1024]

LAST line: ``RESULT transfer_1g download_ratio=<r> upload_ratio=<r> rss_growth_mb=<n>``
(targets: download_ratio >= 0.9, upload_ratio >= 0.7, rss_growth_mb <= 64).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.harness import ensure_unix_users  # noqa: E402
from tests.user_server import UserServer  # noqa: E402

MIB = 1 << 20


def server_pid(server: UserServer) -> int:
    """The jupyter-server process (runuser → env → python)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if f"--port={server.port}".encode() in cmd and f"Uid:\t{server.uid}\t" in status:
            return int(pid)
    raise RuntimeError("server process not found")


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def local_copy(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(MIB):
            fout.write(chunk)
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


def download(server: UserServer, name: str, dst: Path) -> float:
    start = time.perf_counter()
    with requests.get(server.api + "download", params={"path": name}, headers=server.auth, stream=True, timeout=600) as r:
        r.raise_for_status()
        with open(dst, "wb") as fout:
            for chunk in r.iter_content(MIB):
                fout.write(chunk)
    elapsed = time.perf_counter() - start
    dst.unlink()
    return elapsed


def upload(server: UserServer, src: Path, name: str, chunk_mib: int = 16) -> float:
    size = src.stat().st_size
    start = time.perf_counter()
    up = server.post("uploads", {"path": name, "size": size, "overwrite": True}).json()
    with open(src, "rb") as fin, requests.Session() as s:
        offset = 0
        while offset < size:
            data = fin.read(chunk_mib * MIB)
            r = s.put(server.api + f"uploads/{up['id']}", data=data, timeout=600, headers={
                **server.auth, "Content-Range": f"bytes {offset}-{offset + len(data) - 1}/{size}"})
            r.raise_for_status()
            offset += len(data)
    elapsed = time.perf_counter() - start
    assert (server.home / name).stat().st_size == size
    (server.home / name).unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_unix_users(("alice",))
    server = UserServer("alice").start()
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"ink-transfer-{os.getpid()}"
    scratch.mkdir()
    try:
        src = server.home / "big.bin"
        with open(src, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        os.chown(src, server.uid, server.gid)
        pid = server_pid(server)
        server.get("list")  # imports and caches warm
        before = hwm_mb(pid)
        local, down, up = [], [], []
        for _ in range(args.rounds):  # interleaved, each after a sync, so that write-back of one
            os.sync()                 # measurement does not slow the next one
            local.append(local_copy(src, scratch / "copy.bin"))
            os.sync()
            down.append(download(server, "big.bin", scratch / "down.bin"))
            os.sync()
            up.append(upload(server, src, "up.bin"))
        after = hwm_mb(pid)
        l, d, u = statistics.median(local), statistics.median(down), statistics.median(up)
        size = args.size_mib
        print(f"local copy {size / l:.0f} MiB/s, download {size / d:.0f} MiB/s, upload {size / u:.0f} MiB/s")
        print(f"server peak RSS {before:.0f} MiB before, {after:.0f} MiB after")
        print(f"RESULT transfer_1g download_ratio={l / d:.2f} upload_ratio={l / u:.2f} rss_growth_mb={after - before:.0f}")
    finally:
        server.stop()
        for p in scratch.iterdir():
            p.unlink()
        scratch.rmdir()


if __name__ == "__main__":
    main()
