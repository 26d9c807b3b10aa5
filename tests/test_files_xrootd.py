"""The XRootD storage adapter against a real xrootd server (Debian xrootd-server) on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from .harness import free_port
from .user_server import UserServer


@pytest.fixture(scope="module")
def xrootd_server():
    if not shutil.which("xrootd"):
        pytest.fail("xrootd is not installed: scripts/install puts Debian's xrootd-server in place")
    base = tempfile.mkdtemp(prefix="ink-xrootd-")
    os.chmod(base, 0o755)
    data = os.path.join(base, "eos", "user", "alice")
    os.makedirs(os.path.join(data, "run1"))
    admin = os.path.join(base, "admin")
    os.makedirs(admin)
    subprocess.run(["chown", "nobody", admin], check=True)
    port = free_port()
    with open(os.path.join(base, "xrd.cfg"), "w") as f:
        f.write(f"all.export /eos\noss.localroot {base}\nxrd.port {port}\nall.adminpath {admin}\nall.pidpath {admin}\n")
    payload = os.urandom(9 * 1024 * 1024 + 11)  # more than two client reads
    with open(os.path.join(data, "run1", "hits.bin"), "wb") as f:
        f.write(payload)
    for i in range(30):
        with open(os.path.join(data, f"f{i:02d}.txt"), "w") as f:
            f.write("x" * i)
    subprocess.run(["chmod", "-R", "a+rX", base], check=True)
    proc = subprocess.Popen(["xrootd", "-c", os.path.join(base, "xrd.cfg"), "-R", "nobody",
                             "-l", os.path.join(admin, "xrd.log")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"root://127.0.0.1:{port}"
    from XRootD import client

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, _ = client.FileSystem(url).stat("/eos")
        if status.ok:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("xrootd did not start")
    yield {"url": url, "payload": payload}
    os.killpg(proc.pid, 15)
    proc.wait(10)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def server(unix_users, xrootd_server):
    s = UserServer("alice", roots=[{"name": "EOS", "url": xrootd_server["url"] + "//eos/user/alice"}]).start()
    yield s
    s.stop()


def test_lists_an_xrootd_directory_in_pages(server, xrootd_server):
    root = xrootd_server["url"] + "//eos/user/alice"
    roots = server.get("roots").json()["roots"]
    assert {"name": "EOS", "path": root, "read_only": True, "kind": "xrootd"} in roots  # read-only here
    page = server.get("list", params={"path": root, "limit": 10}).json()
    assert page["total"] == 31 and page["writable"] is False
    assert page["entries"][0]["name"] == "run1" and page["entries"][0]["type"] == "directory"
    assert page["entries"][0]["path"] == root + "/run1"
    assert [e["name"] for e in page["entries"][1:3]] == ["f00.txt", "f01.txt"]
    assert page["parent"] is None  # the root's parent is not browsable
    by_size = server.get("list", params={"path": root, "sort": "size", "order": "desc", "filter": "f"}).json()
    assert by_size["entries"][0]["name"] == "f29.txt" and by_size["entries"][0]["size"] == 29
    sub = server.get("list", params={"path": root + "/run1"}).json()
    assert [e["name"] for e in sub["entries"]] == ["hits.bin"] and sub["parent"] == root


def test_streams_an_xrootd_file_with_range(server, xrootd_server):
    url = xrootd_server["url"] + "//eos/user/alice/run1/hits.bin"
    payload = xrootd_server["payload"]
    assert server.get("stat", params={"path": url}).json()["size"] == len(payload)
    full = server.get("download", params={"path": url})
    assert full.status_code == 200 and full.content == payload
    part = server.get("download", params={"path": url}, headers={"Range": "bytes=4194300-4194310"})
    assert part.status_code == 206 and part.content == payload[4194300:4194311]
    assert part.headers["Content-Range"] == f"bytes 4194300-4194310/{len(payload)}"


@pytest.mark.parametrize("suffix", [
    "//eos/user/alice/../bob", "//eos/user", "//etc/passwd", "//eos/user/alicex",
])
def test_xrootd_paths_outside_the_root_are_refused(server, xrootd_server, suffix):
    r = server.get("list", params={"path": xrootd_server["url"] + suffix})
    assert r.status_code == 403, r.text


def test_other_xrootd_servers_and_bad_urls_are_refused(server, xrootd_server):
    assert server.get("list", params={"path": "root://evil.example:1094//eos/user/alice"}).status_code == 403
    assert server.get("download", params={"path": "root://nonsense"}).status_code == 400
    missing = server.get("list", params={"path": xrootd_server["url"] + "//eos/user/alice/nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["message"]
