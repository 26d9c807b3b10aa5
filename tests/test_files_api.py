"""The file manager API in a real jupyter-server running as alice: listing, transfers,
operations, and the attacks (traversal, symlinks, CSRF, oversize, disk full)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
import requests

from .harness import scaled
from .user_server import UserServer


@pytest.fixture(scope="module")
def readonly_root():
    path = tempfile.mkdtemp(prefix="ink-ro-")
    os.chmod(path, 0o777)  # the OS would let alice write: the root's read_only must stop it
    with open(os.path.join(path, "calib.txt"), "w") as f:
        f.write("constants\n")
    yield path
    subprocess.run(["rm", "-rf", path])


@pytest.fixture(scope="module")
def full_disk(unix_users):
    """A 1 MiB tmpfs owned by alice: writes past it fail with ENOSPC, like a full /eos."""
    path = tempfile.mkdtemp(prefix="ink-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,uid=1001,mode=0755", "tmpfs", path], check=True)
    subprocess.run(["chown", "alice:", path], check=True)
    yield path
    subprocess.run(["umount", "-l", path])
    os.rmdir(path)


@pytest.fixture(scope="module")
def server(unix_users, readonly_root, full_disk):
    s = UserServer("alice", roots=[{"name": "Calib", "path": readonly_root, "read_only": True},
                                   {"name": "Small disk", "path": full_disk}],
                   extra_args=("--InkFilesApp.max_upload_size=50000000",)).start()
    yield s
    s.stop()


def test_listing_pages_sorts_and_filters(server):
    for i in range(25):
        server.write(f"many/f{i:03d}.txt", "x" * i)
    server.write("many/.hidden", "h")
    server.write("many/zdir/inner", "")
    first = server.get("list", params={"path": str(server.home / "many"), "limit": 10}).json()
    assert first["total"] == 26  # hidden file left out
    assert first["entries"][0]["name"] == "zdir" and first["entries"][0]["type"] == "directory"  # dirs first
    assert [e["name"] for e in first["entries"][1:4]] == ["f000.txt", "f001.txt", "f002.txt"]
    second = server.get("list", params={"path": "many", "limit": 10, "offset": 10}).json()
    assert second["entries"][0]["name"] == "f009.txt"  # relative paths are relative to home
    by_size = server.get("list", params={"path": "many", "sort": "size", "order": "desc"}).json()
    assert by_size["entries"][1]["name"] == "f024.txt"
    filtered = server.get("list", params={"path": "many", "filter": "F01"}).json()
    assert sorted(e["name"] for e in filtered["entries"]) == [f"f01{i}.txt" for i in range(10)]
    hidden = server.get("list", params={"path": "many", "hidden": "1"}).json()
    assert ".hidden" in [e["name"] for e in hidden["entries"]]
    entry = next(e for e in first["entries"] if e["name"] == "f001.txt")
    assert entry["owner"] == "alice" and entry["perms"].startswith("-rw") and entry["size"] == 1


@pytest.mark.parametrize("params, status, words", [
    ({"sort": "owner"}, 400, "sort"),
    ({"limit": "0"}, 400, "limit"),
    ({"limit": "x"}, 400, "limit"),
    ({"path": "no/such/dir"}, 404, "does not exist"),
])
def test_listing_bad_input_names_the_field(server, params, status, words):
    r = server.get("list", params=params)
    assert r.status_code == status
    assert words in r.json()["message"]


@pytest.mark.parametrize("path", [
    "/etc", "../", "..", "~/../", "/home/bob", "%2e%2e/%2e%2e/etc", "/tmp",
    "many/../../", "/proc/self/environ",
])
def test_paths_outside_the_roots_are_refused(server, path):
    r = server.get("list", params={"path": path})
    assert r.status_code in (403, 404), r.text
    assert "Traceback" not in r.text
    r = server.get("download", params={"path": path})
    assert r.status_code in (400, 403, 404)


def test_symlink_out_of_the_roots_is_refused_and_one_inside_works(server):
    server.as_user("ln", "-sfn", "/etc", str(server.home / "etc-link"))
    server.as_user("ln", "-sfn", "/etc/passwd", str(server.home / "passwd-link"))
    server.write("real/data.txt", "inside")
    server.as_user("ln", "-sfn", str(server.home / "real"), str(server.home / "inner-link"))
    assert server.get("list", params={"path": "etc-link"}).status_code == 403
    assert server.get("download", params={"path": "passwd-link"}).status_code == 403
    assert server.get("download", params={"path": "etc-link/passwd"}).status_code == 403
    assert server.get("download", params={"path": "inner-link/data.txt"}).text == "inside"
    # a zip of home leaves the outside link out but keeps the inside one
    names = zipfile.ZipFile(io.BytesIO(server.get("zip", params={"path": str(server.home)}).content)).namelist()
    home = server.home.name
    assert f"{home}/real/data.txt" in names
    assert not any("passwd" in n for n in names)
    # writing through a link that leads out is refused too
    assert server.post("mkdir", {"path": "etc-link/x"}).status_code == 403


def test_download_streams_with_range(server):
    data = os.urandom(3 * 1024 * 1024 + 17)
    server.write("blob.bin", data)
    full = server.get("download", params={"path": "blob.bin"})
    assert full.status_code == 200 and full.content == data
    assert full.headers["Content-Disposition"].startswith("attachment")
    assert full.headers["X-Content-Type-Options"] == "nosniff"
    part = server.get("download", params={"path": "blob.bin"}, headers={"Range": "bytes=1048570-1048600"})
    assert part.status_code == 206 and part.content == data[1048570:1048601]
    assert part.headers["Content-Range"] == f"bytes 1048570-1048600/{len(data)}"
    tail = server.get("download", params={"path": "blob.bin"}, headers={"Range": "bytes=-10"})
    assert tail.content == data[-10:]


def test_inline_html_is_never_served_as_html(server):
    server.write("evil.html", "<script>alert(1)</script>")
    server.write("evil.svg", '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    for name in ("evil.html", "evil.svg"):
        r = server.get("download", params={"path": name, "inline": "1"})
        assert "html" not in r.headers["Content-Type"] and "svg" not in r.headers["Content-Type"]
        assert "sandbox" in r.headers["Content-Security-Policy"]


def test_zip_of_a_directory_and_a_selection(server):
    server.write("proj/a.txt", "A")
    server.write("proj/sub/b.txt", "B")
    server.write("single.txt", "S")
    z = zipfile.ZipFile(io.BytesIO(server.get("zip", params={"path": "proj"}).content))
    assert sorted(z.namelist()) == ["proj/a.txt", "proj/sub/b.txt"]
    assert z.read("proj/sub/b.txt") == b"B" and z.testzip() is None
    z = zipfile.ZipFile(io.BytesIO(server.get("zip", params=[("path", "proj/a.txt"), ("path", "single.txt")]).content))
    assert sorted(z.namelist()) == ["a.txt", "single.txt"]


def test_operations(server):
    assert server.post("mkdir", {"path": "ops"}).status_code == 201
    assert server.post("mkdir", {"path": "ops"}).status_code == 409
    assert server.post("touch", {"path": "ops/new.txt"}).status_code == 201
    assert (server.home / "ops/new.txt").stat().st_uid == server.uid  # created as alice
    assert server.post("move", {"path": "ops/new.txt", "to": "ops/renamed.txt"}).status_code == 200
    assert server.post("mkdir", {"path": "ops/dest"}).status_code == 201
    assert server.post("copy", {"path": "ops/renamed.txt", "to": "ops/dest"}).json()["path"] == str(server.home / "ops/dest/renamed.txt")
    assert server.post("copy", {"path": "ops", "to": "ops/dest/inside"}).status_code == 400  # into itself
    assert server.post("move", {"path": "ops/renamed.txt", "to": "ops/dest/renamed.txt"}).status_code == 409
    r = server.post("delete", {"paths": ["ops/dest", "ops/renamed.txt"]})
    assert r.status_code == 200 and not (server.home / "ops/dest").exists()
    assert server.post("delete", {"paths": [str(server.home)]}).status_code == 403  # a root
    assert server.post("mkdir", {"path": "ops/a/b"}).status_code == 404  # parent missing
    for bad in ({"path": "ops/x\x00y"}, {"path": 5}, {}):
        r = server.post("mkdir", bad)
        assert r.status_code == 400, bad
        assert "path" in r.json()["message"]
    assert server.post("delete", {"paths": "ops"}).status_code == 400
    r = server.post("mkdir", None, data=b"not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["message"]


def test_read_only_root_is_never_written(server, readonly_root):
    listing = server.get("list", params={"path": readonly_root}).json()
    assert [e["name"] for e in listing["entries"]] == ["calib.txt"] and listing["writable"] is False
    for endpoint, body in [("mkdir", {"path": f"{readonly_root}/x"}), ("touch", {"path": f"{readonly_root}/y"}),
                           ("delete", {"paths": [f"{readonly_root}/calib.txt"]}),
                           ("move", {"path": f"{readonly_root}/calib.txt", "to": "calib.txt"}),
                           ("uploads", {"path": f"{readonly_root}/up", "size": 1})]:
        r = server.post(endpoint, body)
        assert r.status_code == 403 and "read-only" in r.json()["message"], endpoint
    # copying out of it is fine
    assert server.post("copy", {"path": f"{readonly_root}/calib.txt", "to": "calib-copy.txt"}).status_code == 200
    assert os.listdir(readonly_root) == ["calib.txt"]


def put_chunk(server, upload_id, data, start, total):
    import requests

    return requests.put(server.api + f"uploads/{upload_id}", data=data, timeout=30, headers={
        **server.auth, "Content-Range": f"bytes {start}-{start + len(data) - 1}/{total}"})


def test_chunked_upload_resumes_after_a_dropped_connection(server):
    data = os.urandom(5 * 1024 * 1024 + 3)
    up = server.post("uploads", {"path": "upload/big.bin", "size": len(data)})
    assert up.status_code == 404  # the folder does not exist yet
    server.post("mkdir", {"path": "upload"})
    up = server.post("uploads", {"path": "upload/big.bin", "size": len(data)}).json()
    assert put_chunk(server, up["id"], data[:2_000_000], 0, len(data)).json()["offset"] == 2_000_000
    # a second chunk dies half-way: raw socket, send headers and part of the body, hang up
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        body = data[2_000_000:4_000_000]
        head = (f"PUT /ink/api/files/uploads/{up['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: token {server.token}\r\nContent-Length: {len(body)}\r\n"
                f"Content-Range: bytes 2000000-3999999/{len(data)}\r\n\r\n")
        sock.sendall(head.encode() + body[:700_000])
    assert not (server.home / "upload/big.bin").exists()  # nothing under the final name
    import time
    deadline = time.monotonic() + scaled(5)  # the server notices the hang-up and keeps the part
    while True:
        offset = server.get(f"uploads/{up['id']}").json()["offset"]
        if offset >= 2_000_000 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 2_000_000 <= offset <= 2_700_000
    # a chunk at the wrong offset is refused with the right one named
    r = put_chunk(server, up["id"], data[0:10], 0, len(data))
    assert r.status_code == 409 and str(offset) in r.json()["message"]
    r = put_chunk(server, up["id"], data[offset:], offset, len(data))
    assert r.json()["done"] is True
    stored = (server.home / "upload/big.bin").read_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    assert not [n for n in os.listdir(server.home / "upload") if n.startswith(".ink-upload-")]


def test_upload_refusals(server):
    server.write("exists.txt", "old")
    r = server.post("uploads", {"path": "exists.txt", "size": 3})
    assert r.status_code == 409 and "overwrite" in r.json()["message"]
    r = server.post("uploads", {"path": "huge.bin", "size": 60_000_000})
    assert r.status_code == 413 and "limit" in r.json()["message"]
    r = server.post("uploads", {"path": "neg.bin", "size": -1})
    assert r.status_code == 400 and "size" in r.json()["message"]
    up = server.post("uploads", {"path": "small.bin", "size": 4}).json()
    r = put_chunk(server, up["id"], b"12345678", 0, 8)
    assert r.status_code == 400 and "Content-Range" in r.json()["message"]
    big = server.post("uploads", {"path": "big-chunk.bin", "size": 20 << 20}).json()
    r = put_chunk(server, big["id"], b"x" * (17 << 20), 0, 20 << 20)
    assert r.status_code == 413 and "chunk" in r.json()["message"]
    import requests
    assert requests.delete(server.api + f"uploads/{big['id']}", headers=server.auth).status_code == 204
    r = put_chunk(server, up["id"], b"12", 0, 4)
    assert r.json()["offset"] == 2
    # cancelling removes the part file and nothing appears
    assert server.get(f"uploads/{up['id']}").json()["offset"] == 2
    import requests
    assert requests.delete(server.api + f"uploads/{up['id']}", headers=server.auth).status_code == 204
    assert not (server.home / "small.bin").exists()
    assert not [n for n in os.listdir(server.home) if n.startswith(".ink-upload-")]
    # overwrite, when asked
    up = server.post("uploads", {"path": "exists.txt", "size": 3, "overwrite": True}).json()
    put_chunk(server, up["id"], b"new", 0, 3)
    assert (server.home / "exists.txt").read_text() == "new"


def test_a_newer_chunk_takes_over_from_one_still_in_flight(server):
    """Chunks are written while they arrive. A client that resumes after its connection broke
    (while the server has not noticed yet) must not be refused, and the two must never
    interleave: the newer chunk wins, the older one is answered 409 and writes no more."""
    data = os.urandom(3 * 1024 * 1024)
    up = server.post("uploads", {"path": "inflight.bin", "size": len(data)}).json()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = (f"PUT /ink/api/files/uploads/{up['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: token {server.token}\r\nContent-Length: {len(data)}\r\n"
                f"Content-Range: bytes 0-{len(data) - 1}/{len(data)}\r\n\r\n")
        stale = bytes(len(data))  # zeros: if any reached the file, the check below fails
        sock.sendall(head.encode() + stale[:1_500_000])  # the old chunk is still arriving
        r = put_chunk(server, up["id"], data, 0, len(data))
        assert r.status_code == 200 and r.json()["done"] is True, r.text
        sock.sendall(stale[1_500_000:])
        sock.settimeout(120)
        answer = b""
        while b"took over" not in answer and b"}" not in answer.partition(b"\r\n\r\n")[2]:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 409") and b"took over" in answer, answer
    assert (server.home / "inflight.bin").read_bytes() == data
    assert not [n for n in os.listdir(server.home) if n.startswith(".ink-upload-")]


def test_disk_full_is_reported_and_cleaned_up(server, full_disk):
    data = os.urandom(2 * 1024 * 1024)
    up = server.post("uploads", {"path": f"{full_disk}/too-big.bin", "size": len(data)}).json()
    r = put_chunk(server, up["id"], data, 0, len(data))
    assert r.status_code == 507, r.text
    assert "no space left" in r.json()["message"]
    assert os.listdir(full_disk) == []  # neither the final name nor the part file


def test_csrf_cookie_requests_need_the_xsrf_token(server):
    s = server.browser_session()
    r = s.post(server.api + "mkdir", json={"path": "csrf-made"})
    assert r.status_code == 403 and not (server.home / "csrf-made").exists()
    # a cross-site page cannot read a download either (no same-site Referer)
    server.write("secret.txt", "s3cret")
    r = s.get(server.api + "download", params={"path": "secret.txt"}, headers={"Referer": "https://evil.example/"})
    assert r.status_code in (403, 404) and "s3cret" not in r.text
    xsrf = server.xsrf_from_page(s)
    r = s.post(server.api + "mkdir", json={"path": "csrf-made"}, headers={"X-XSRFToken": xsrf})
    assert r.status_code == 201


def test_no_token_no_access(server):
    import requests

    for headers in ({}, {"Authorization": "token wrong"}):
        r = requests.get(server.api + "list", headers=headers, timeout=10)
        assert r.status_code == 401 and "token" in r.json()["message"]
        assert r.headers["WWW-Authenticate"].startswith("token")
        r = requests.post(server.api + "mkdir", json={"path": "x"}, headers=headers, timeout=10)
        assert r.status_code == 401 and not (server.home / "x").exists()
    r = requests.get(server.api + "no/such/endpoint", headers=server.auth, timeout=10)
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")


def test_fits_preview(server):
    import numpy as np
    from astropy.io import fits

    image = np.random.default_rng(1).normal(100, 5, (300, 200)).astype("float32")
    image[150, 100] = 1e6  # a hot pixel must not flatten the picture
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, name="SCI")]).writeto(buf)
    server.write("sky.fits", buf.getvalue())
    r = server.get("fits", params={"path": "sky.fits"}).json()
    assert r["hdu"] == 1 and [h["name"] for h in r["hdus"]] == ["PRIMARY", "SCI"]
    assert r["hdus"][1]["shape"] == [300, 200]
    assert "NAXIS1  =                  200" in r["header"]
    import base64

    png = base64.b64decode(r["image"].split(",", 1)[1])
    assert png.startswith(b"\x89PNG")
    # the zscale picture uses the grey range, not just black with one white dot
    decoded = decode_gray_png(png)
    assert decoded.shape == (300, 200) and decoded.std() > 20
    server.write("not.fits", "hello")
    assert server.get("fits", params={"path": "not.fits"}).status_code == 415
    # an HDU that is not an ASCII number: 400 naming the field (str.isdigit() accepts '²')
    for bad in ("²", "١", "-1", "x", "1.0", "9" * 40):
        r = server.get("fits", params={"path": "sky.fits", "hdu": bad})
        assert r.status_code == 400 and r.json()["message"].startswith("hdu: "), (bad, r.status_code, r.text)


def _astropy_fits_samples() -> list[Path]:
    import astropy

    data = Path(astropy.__file__).parent / "io" / "fits" / "tests" / "data"
    return sorted(p for p in data.rglob("*") if p.is_file() and ".fits" in p.name)


ASTROPY_FITS = _astropy_fits_samples()


def test_astropy_ships_fits_test_data():
    """The parametrized test below must have files to run on (astropy's own test data)."""
    assert len(ASTROPY_FITS) >= 30 and any(p.name == "o4sp040b0_raw.fits" for p in ASTROPY_FITS)


@pytest.mark.parametrize("sample", ASTROPY_FITS, ids=lambda p: p.name)
def test_fits_preview_of_astropy_test_data(server, sample):
    """Every FITS file astropy ships as test data previews (issue 20): HST's raw frame with
    BZERO/BSCALE, BLANK, compressed images, random groups, ASCII and binary tables, LZW (.Z).
    Each HDU answers 200; an image is drawn (no error) and a table lists astropy's columns."""
    import warnings

    import numpy as np
    from astropy.io import fits

    server.write(f"astropy/{sample.name}", sample.read_bytes())
    first = server.get("fits", params={"path": f"astropy/{sample.name}"})
    assert first.status_code == 200, first.text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(sample, memmap=False) as expected:
            assert len(first.json()["hdus"]) == len(expected)
            for i, h in enumerate(expected):
                r = server.get("fits", params={"path": f"astropy/{sample.name}", "hdu": str(i)})
                assert r.status_code == 200, (i, r.text)
                body = r.json()
                assert body["hdu"] == i and body["header"].startswith(("SIMPLE", "XTENSION"))
                assert "Unhandled" not in r.text
                kind = type(h).__name__
                assert body["hdus"][i]["kind"] == kind
                if h.is_image and kind != "GroupsHDU" and h.shape and len(h.shape) >= 2 and min(h.shape) > 0:
                    assert body["image_error"] is None, body["image_error"]
                    png = decode_gray_png(base64.b64decode(body["image"].split(",", 1)[1]))
                    step = max(1, -(-max(h.shape[-2:]) // 1024))
                    assert png.shape == tuple(-(-n // step) for n in h.shape[-2:])
                    plane = np.asarray(h.data[(0,) * (h.data.ndim - 2)], dtype="float64")
                    if np.isfinite(plane).any() and np.nanstd(plane) > 0 and step == 1:
                        assert png.std() > 0, "a picture, not a flat grey"
                elif hasattr(h, "columns") and not h.is_image:
                    assert [c["name"] for c in body["columns"]] == list(h.columns.names)
                    rows = h.header["GCOUNT"] if kind == "GroupsHDU" else h.header["NAXIS2"]
                    assert body["rows"] == rows


def test_fits_preview_of_a_huge_file_reads_only_the_thumbnail(server):
    """A 3 GiB scaled (BZERO) image: the preview reads its thumbnail's rows, not the file."""
    from astropy.io import fits

    side = 40000
    header = fits.Header([("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", side),
                          ("NAXIS2", side), ("BZERO", 32768), ("BSCALE", 1)])
    path = server.write("huge.fits", header.tostring().encode())
    size = -(-(len(header.tostring()) + side * side * 2) // 2880) * 2880
    os.truncate(path, size)  # sparse: no disk space used
    before = _bytes_read(server.proc.pid)
    r = server.get("fits", params={"path": "huge.fits"})
    read = _bytes_read(server.proc.pid) - before
    assert r.status_code == 200 and r.json()["image"] and r.json()["image_error"] is None, r.text
    assert read < size // 20, f"{read} bytes read for a preview of a {size}-byte file"


def _bytes_read(pgid: int) -> int:
    """Bytes the server's processes have read (rchar of /proc/PID/io, summed over its group)."""
    total = 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.getpgid(int(p)) != pgid:
                    continue
                with open(f"/proc/{p}/io") as f:
                    total += int(next(line for line in f if line.startswith("rchar:")).split()[1])
            except (OSError, ProcessLookupError, StopIteration):
                continue
    return total


def test_fits_preview_errors_say_what_and_why(server):
    """No bare "Unhandled error": a damaged file names what could not be read and why."""
    import numpy as np
    from astropy.io import fits

    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((300, 200), "int16"), name="SCI")]).writeto(buf)
    server.write("cut.fits", buf.getvalue()[:2880 * 3 + 1000])  # the image's data cut short
    r = server.get("fits", params={"path": "cut.fits"})
    assert r.status_code == 200 and [h["name"] for h in r.json()["hdus"]] == ["PRIMARY", "SCI"]
    assert r.json()["image"] is None
    assert "HDU 1" in r.json()["image_error"] and "cut short" in r.json()["image_error"]
    server.write("garbage.fits", b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  = banana" + b" " * 2800)
    r = server.get("fits", params={"path": "garbage.fits"})
    assert r.status_code == 415 and r.json()["message"].startswith("garbage.fits: not a readable FITS file (")
    r = server.get("fits", params={"path": "cut.fits", "hdu": "7"})
    assert r.status_code == 400 and r.json()["message"] == "hdu: between 0 and 1"


def decode_gray_png(png: bytes):
    import struct
    import zlib

    import numpy as np

    width, height = struct.unpack(">II", png[16:24])
    pos, idat = 8, b""
    while pos < len(png):
        length, = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    rows = [raw[r * (width + 1) + 1:(r + 1) * (width + 1)] for r in range(height)]
    return np.frombuffer(b"".join(rows), dtype="uint8").reshape(height, width)


def test_shares_sign_confine_expire_and_revoke(server):
    server.write("pub/data/x.txt", "shared")
    server.write("private.txt", "mine")
    r = server.post("../shares", {"path": "pub", "expires_in": 3600})
    share = r.json()
    assert r.status_code == 201 and share["url"].startswith("/hub/ink/share/alice/")
    relay = {"X-Ink-Share-Viewer": "bob"}
    serve = server.url + "ink/share/" + share["token"]
    import requests

    listing = requests.get(serve + "/", headers={**server.auth, **relay}).json()
    assert [e["name"] for e in listing["entries"]] == ["data"]
    assert requests.get(serve + "/data/x.txt", headers={**server.auth, **relay}).text == "shared"
    for escape in ("/../private.txt", "/data/../../private.txt", "/%2e%2e/private.txt"):
        r = requests.get(serve + escape, headers={**server.auth, **relay})
        assert r.status_code in (400, 403, 404) and "mine" not in r.text, escape
    server.as_user("ln", "-s", str(server.home / "private.txt"), str(server.home / "pub/link.txt"))
    assert requests.get(serve + "/link.txt", headers={**server.auth, **relay}).status_code == 403
    # forged: another id, another expiry, another signature
    token_id, expires, sig = share["token"].split(".")
    for forged in (f"{token_id}.{int(expires) + 999}.{sig}", f"{token_id}.{expires}.{'0' * 32}", "garbage"):
        assert requests.get(server.url + f"ink/share/{forged}/", headers={**server.auth, **relay}).status_code == 403
    # anonymous viewers only when the share and the site allow it
    assert requests.get(serve + "/", headers={**server.auth, "X-Ink-Share-Viewer": "anonymous"}).status_code == 403
    assert server.post("../shares", {"path": "pub", "anonymous": True}).status_code == 403
    assert server.post("../shares", {"path": "pub", "expires_in": 10}).status_code == 400
    # listed, then revoked: the link stops working at once
    mine = server.get("../shares").json()["shares"]
    assert [s["id"] for s in mine] == [share["id"]]
    assert requests.delete(server.url + f"ink/api/shares/{share['id']}", headers=server.auth).status_code == 204
    assert requests.get(serve + "/", headers={**server.auth, **relay}).status_code == 410
    store = server.home / ".ink" / "shares.json"
    assert oct(store.stat().st_mode & 0o777) == "0o600" and oct(store.parent.stat().st_mode & 0o777) == "0o700"
    assert json.loads(store.read_text())["shares"] == {}


def test_expired_share_is_refused(tmp_path, monkeypatch):
    import time

    from ink_files_ext.files import shares
    from ink_files_ext.files.roots import FilesError

    store = shares.ShareStore(str(tmp_path / "shares.json"))
    share = store.create(str(tmp_path), "directory", 60, False)
    assert store.check(share["token"])["id"] == share["id"]
    now = time.time()
    monkeypatch.setattr(shares.time, "time", lambda: now + 61)
    with pytest.raises(FilesError) as e:
        store.check(share["token"])
    assert e.value.status == 410 and "expired" in e.value.message
    assert store.list() == []  # expired shares are swept from the list


def test_workspace_header_confines_every_operation(server):
    """``X-Ink-Within`` (sent by ``ink mcp --workspace``): the request reaches nothing outside
    that folder, whatever the path says — ``..``, absolute paths, symlinks, the folder's prefix."""
    server.write("ws/in.txt", "inside")
    server.write("ws-evil/x.txt", "sibling")
    server.write("outside.txt", "home, not workspace")
    server.as_user("ln", "-sfn", str(server.home / "outside.txt"), str(server.home / "ws" / "out-link"))
    server.as_user("ln", "-sfn", str(server.home / "ws-evil"), str(server.home / "ws" / "dir-link"))
    ws = str(server.home / "ws")
    within = {"X-Ink-Within": ws}
    listing = server.get("list", headers=within).json()  # no path: the workspace itself
    assert listing["path"] == ws and {"in.txt", "out-link", "dir-link"} <= {e["name"] for e in listing["entries"]}
    assert listing["parent"] is None and listing["root"]["name"] == "Workspace"
    assert server.get("download", params={"path": "in.txt"}, headers=within).text == "inside"  # relative to it
    assert server.get("roots", headers=within).json()["roots"] == [
        {"name": "Workspace", "path": ws, "read_only": False, "kind": "posix"}]
    for path in ("..", f"{ws}/..", str(server.home / "outside.txt"), "~/outside.txt", f"{ws}-evil/x.txt",
                 "out-link", "dir-link/x.txt", "dir-link", "/etc/passwd"):
        for endpoint in ("stat", "download", "list"):
            r = server.get(endpoint, params={"path": path}, headers=within)
            assert r.status_code in (400, 403), (endpoint, path, r.status_code, r.text)
            assert "sibling" not in r.text and "home, not workspace" not in r.text
    assert "outside the workspace" in server.get("stat", params={"path": "out-link"}, headers=within).json()["message"]
    # writes too: a new file through a link, a move out, a delete of the outside file
    assert server.post("touch", {"path": "dir-link/new.txt"}, headers=within).status_code == 403
    assert server.post("move", {"path": "in.txt", "to": str(server.home)}, headers=within).status_code == 403
    assert server.post("delete", {"paths": [str(server.home / "outside.txt")]}, headers=within).status_code == 403
    assert server.post("uploads", {"path": "../up.txt", "size": 1}, headers=within).status_code == 403
    assert server.post("delete", {"paths": [ws]}, headers=within).status_code in (400, 403)  # not the workspace itself
    assert (server.home / "outside.txt").read_text() == "home, not workspace"
    assert not (server.home / "ws-evil" / "new.txt").exists()
    # the workspace must itself be a folder inside the user's roots
    assert server.get("stat", params={"path": "x"}, headers={"X-Ink-Within": "/etc"}).status_code == 403
    assert server.get("stat", params={"path": "x"}, headers={"X-Ink-Within": "ws/in.txt"}).status_code == 400
    assert server.get("stat", params={"path": "x"}, headers={"X-Ink-Within": "ws/../.."}).status_code == 403
    # an empty workspace is refused on every operation, also those that touch no path
    # (schemathesis found GET uploads/ID taking it)
    outside = server.post("uploads", {"path": str(server.home / "outside-up.bin"), "size": 4}).json()
    empty = {"X-Ink-Within": ""}
    assert server.get("stat", params={"path": "x"}, headers=empty).status_code == 400
    r = server.get(f"uploads/{outside['id']}", headers=empty)
    assert r.status_code == 400 and "X-Ink-Within" in r.json()["message"]
    # an upload whose file goes outside the workspace does not exist for it: read, chunk, cancel
    assert server.get(f"uploads/{outside['id']}", headers=within).status_code == 403
    auth = {**server.auth, **within}
    r = requests.put(f"{server.api}uploads/{outside['id']}", data=b"evil",
                     headers={**auth, "Content-Range": "bytes 0-3/4"}, timeout=30)
    assert r.status_code == 403 and "outside the workspace" in r.json()["message"]
    assert requests.delete(f"{server.api}uploads/{outside['id']}", headers=auth, timeout=30).status_code == 403
    assert server.get(f"uploads/{outside['id']}").json()["offset"] == 0  # untouched, still there
    assert not (server.home / "outside-up.bin").exists()
    assert requests.delete(f"{server.api}uploads/{outside['id']}", headers=server.auth, timeout=30).status_code == 204


def test_storage_usage_per_root(server, full_disk, readonly_root):
    roots = {r["name"]: r for r in server.get("usage").json()["roots"]}
    assert set(roots) == {"Home", "Calib", "Small disk"}
    small = roots["Small disk"]
    st = os.statvfs(full_disk)
    assert small["total"] == st.f_blocks * st.f_frsize == 1 << 20
    assert small["free"] <= small["total"] and small["used"] >= 0 and small["path"] == full_disk
    assert roots["Calib"]["read_only"] is True and roots["Calib"]["free"] is not None
    before = small["free"]
    server.as_user("dd", "if=/dev/zero", f"of={full_disk}/fill", "bs=64k", "count=4", check=True)
    after = {r["name"]: r for r in server.get("usage").json()["roots"]}["Small disk"]
    assert before - after["free"] >= 200 * 1024  # 256 KiB written (tmpfs counts pages)
    server.as_user("rm", "-f", f"{full_disk}/fill")
    confined = server.get("usage", headers={"X-Ink-Within": full_disk}).json()["roots"]
    assert [r["path"] for r in confined] == [full_disk]
