"""A 100 000-entry directory: the file manager's first page vs jupyter-server's contents API.

Both run in the same real jupyter-server, as alice, on the same directory (made once, page cache
warm for both). The first page is what the user waits for before seeing anything; the contents
API returns (and stats) the whole directory in one response, which is what JupyterLab's file
browser waits for. Median of 5 first pages and of 3 contents listings.

    .venv/bin/python benchmarks/files_list.py [--entries 100000]

LAST line: ``RESULT list_100k first_page_s=<s> contents_api_s=<s> speedup=<contents/first_page>``
(targets: first_page_s <= 1.0, speedup >= 10).
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


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    ensure_unix_users(("alice",))
    server = UserServer("alice").start()
    try:
        big = server.home / "run-2026"
        big.mkdir()
        t0 = time.perf_counter()
        for i in range(args.entries):
            (big / f"event_{i:06d}.root").touch()
        os.system(f"chown -R alice: {big}")
        print(f"made {args.entries} files in {time.perf_counter() - t0:.1f} s", flush=True)

        def first_page():
            r = server.get("list", params={"path": str(big), "limit": 200})
            r.raise_for_status()
            assert r.json()["total"] == args.entries and len(r.json()["entries"]) == 200

        def contents_api():
            r = requests.get(server.url + f"api/contents/{big.name}", headers=server.auth, timeout=600)
            r.raise_for_status()
            assert len(r.json()["content"]) == args.entries

        first_page()  # warm both (dentry cache, imports)
        contents_api()
        pages = [timed(first_page) for _ in range(5)]
        contents = [timed(contents_api) for _ in range(3)]
        print("first page (s):", " ".join(f"{t:.3f}" for t in pages))
        print("contents API (s):", " ".join(f"{t:.3f}" for t in contents))
        # sorting by modification time needs every entry's stat: shown, not targeted
        sorted_mtime = timed(lambda: server.get("list", params={"path": str(big), "sort": "mtime"}).raise_for_status())
        print(f"first page sorted by mtime (stats all entries): {sorted_mtime:.3f} s")
        page, full = statistics.median(pages), statistics.median(contents)
        print(f"RESULT list_100k first_page_s={page:.3f} contents_api_s={full:.3f} speedup={full / page:.1f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
