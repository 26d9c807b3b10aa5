"""FITS preview: the HDU list, a header, an image HDU rendered to PNG, a table's columns.

Astronomers (LHAASO, and anyone with a telescope image) expect a FITS file to open as a
picture, not as bytes. Raw pixel values are useless as grey levels (a few hot pixels and a
sky background four orders of magnitude apart), so the image is scaled with astropy's ZScale
interval, the default of DS9 and most viewers. Rendering runs in a worker thread.

Files can be far larger than memory, so nothing here reads a data unit whole:

- the file is opened without memory mapping and with lazy HDUs, so listing reads headers only;
- an image is read through ``hdu.section`` with a stride: only the rows of the thumbnail are
  read from disk, and astropy applies BZERO/BSCALE/BLANK to them (a memory-mapped ``hdu.data``
  refuses scaled integer images, as HST raw frames are: that was issue 20);
- a table shows its columns from the header (name, format, unit, dimensions) and row count;
- gzip/LZW-compressed files must be decompressed from the start to reach an HDU, so above
  ``MAX_COMPRESSED`` bytes they are refused with a message instead of read.

Every failure is a ``FilesError`` whose message names the file part that could not be read and
astropy's reason; a failure to draw one image keeps the HDU list and header (``image_error``).
"""

from __future__ import annotations

import base64
import os
import struct
import zlib

from .roots import FilesError

MAX_SIDE = 1024
#: largest compressed (.gz, .Z) file previewed: they are decompressed from the start
MAX_COMPRESSED = 256 * 1024 * 1024
#: columns listed per table HDU
MAX_COLUMNS = 999


def _png_gray(pixels) -> bytes:
    """An 8-bit greyscale PNG from a 2-D uint8 array (no imaging library needed for this)."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height - 1, -1, -1))  # FITS y grows upward

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _thumbnail_plane(hdu):
    """The first 2-D plane of an image HDU, every ``step``-th pixel, read through ``section``."""
    import numpy as np

    shape = hdu.shape
    step = max(1, -(-max(shape[-2:]) // MAX_SIDE))
    first = (0,) * (len(shape) - 2)
    if step == 1:
        return np.asarray(hdu.section[first + (slice(None), slice(None))], dtype="float64")
    # one whole row per thumbnail row: a strided section reads pixel by pixel (20 s for 40000²)
    return np.stack([np.asarray(hdu.section[first + (row, slice(None))][::step], dtype="float64")
                     for row in range(0, shape[-2], step)])


def _image_of(data):
    import numpy as np
    from astropy.visualization import ZScaleInterval

    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype="uint8")
    data = np.where(finite, data, np.nanmin(data[finite]))
    low, high = ZScaleInterval().get_limits(data)
    scaled = np.clip((data - low) / ((high - low) or 1.0), 0.0, 1.0)
    return (scaled * 255).astype("uint8")


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _shape(h) -> list[int] | None:
    if not getattr(h, "is_image", False) or type(h).__name__ == "GroupsHDU":
        return None
    shape = getattr(h, "shape", None)
    return list(shape) if shape else None


def _columns(h) -> list[dict] | None:
    """A table HDU's columns, from its header (no row is read)."""
    if not hasattr(h, "columns") or getattr(h, "is_image", False) and type(h).__name__ != "GroupsHDU":
        return None
    cols = []
    for col in list(h.columns)[:MAX_COLUMNS]:
        cols.append({"name": col.name, "format": str(col.format), "unit": col.unit or "",
                     "dim": col.dim or ""})
    return cols


def _rows(h) -> int | None:
    if type(h).__name__ == "GroupsHDU":
        return int(h.header.get("GCOUNT", 0))
    if hasattr(h, "columns") and not getattr(h, "is_image", False):
        return int(h.header.get("NAXIS2", 0))
    return None


def preview(path: str, hdu: int | None = None) -> dict:
    from astropy.io import fits

    name = os.path.basename(path)
    compressed = path.endswith((".gz", ".Z", ".bz2", ".zip"))
    if compressed:
        size = os.stat(path).st_size
        if size > MAX_COMPRESSED:
            raise FilesError(413, f"{name}: a compressed FITS file of {size // 2**20} MiB is too large "
                             f"to preview (it must be decompressed from the start; the limit is "
                             f"{MAX_COMPRESSED // 2**20} MiB): download it")
    try:
        hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
    except ModuleNotFoundError as e:
        raise FilesError(415, f"{name}: cannot open this FITS file: {_reason(e)}") from None
    except (OSError, ValueError, TypeError, IndexError, KeyError) as e:
        raise FilesError(415, f"{name}: not a readable FITS file ({_reason(e)})") from None
    with hdul:
        listing = []
        i = 0
        while True:
            try:
                h = hdul[i]
            except IndexError:
                break
            except Exception as e:  # a damaged header after good ones: list what was readable
                if not listing:
                    raise FilesError(415, f"{name}: not a readable FITS file: HDU {i}: {_reason(e)}") from None
                listing.append({"index": i, "name": "?", "kind": "unreadable", "shape": None,
                                "error": f"HDU {i} cannot be read: {_reason(e)}"})
                break
            try:
                entry = {"index": i, "name": h.name, "kind": type(h).__name__, "shape": _shape(h)}
                columns = _columns(h)
                if columns is not None:
                    entry.update(columns=columns, rows=_rows(h))
            except Exception as e:
                entry = {"index": i, "name": getattr(h, "name", "?"), "kind": type(h).__name__,
                         "shape": None, "error": f"HDU {i} cannot be read: {_reason(e)}"}
            listing.append(entry)
            i += 1
        readable = [h for h in listing if "error" not in h]
        def drawable(h):
            return h["shape"] and len(h["shape"]) >= 2 and all(n > 0 for n in h["shape"])

        if hdu is None:  # the first image HDU with pixels, else the first table, else the first
            hdu = next((h["index"] for h in readable if drawable(h)),
                       next((h["index"] for h in readable if h.get("columns")), 0))
        if not 0 <= hdu < len(listing):
            raise FilesError(400, f"hdu: between 0 and {len(listing) - 1}")
        chosen = listing[hdu]
        if "error" in chosen:
            raise FilesError(422, f"{name}: {chosen['error']}")
        h = hdul[hdu]
        try:
            header = h.header.tostring(sep="\n")
        except Exception as e:
            raise FilesError(422, f"{name}: the header of HDU {hdu} cannot be read: {_reason(e)}") from None
        result = {"hdus": listing, "hdu": hdu, "header": header, "image": None, "image_error": None,
                  "columns": chosen.get("columns"), "rows": chosen.get("rows")}
        if drawable(chosen) and not compressed:
            needed = getattr(h, "_data_offset", 0) + getattr(h, "_data_size", 0)
            size = os.stat(path).st_size
            if needed > size:
                result["image_error"] = (f"the data of HDU {hdu} is cut short: the file ends "
                                         f"{needed - size} bytes before the end of the image")
                return result
        if drawable(chosen):
            try:
                png = _png_gray(_image_of(_thumbnail_plane(h)))
                result["image"] = "data:image/png;base64," + base64.b64encode(png).decode()
            except Exception as e:
                result["image_error"] = f"the image of HDU {hdu} cannot be drawn: {_reason(e)}"
        return result
