"""FITS preview: the HDU list, a header, and an image HDU rendered to PNG with astropy.

Astronomers (LHAASO, and anyone with a telescope image) expect a FITS file to open as a
picture, not as bytes. Raw pixel values are useless as grey levels (a few hot pixels and a
sky background four orders of magnitude apart), so the image is scaled with astropy's ZScale
interval, the default of DS9 and most viewers. Rendering runs in a worker thread.
"""

from __future__ import annotations

import base64
import struct
import zlib

from .roots import FilesError

MAX_SIDE = 1024


def _png_gray(pixels) -> bytes:
    """An 8-bit greyscale PNG from a 2-D uint8 array (no imaging library needed for this)."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height - 1, -1, -1))  # FITS y grows upward

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def _image_of(data):
    import numpy as np
    from astropy.visualization import ZScaleInterval

    while data.ndim > 2:  # cubes: the first plane
        data = data[0]
    step = max(1, -(-max(data.shape) // MAX_SIDE))
    data = np.asarray(data[::step, ::step], dtype="float64")
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype="uint8")
    data = np.where(finite, data, np.nanmin(data[finite]))
    low, high = ZScaleInterval().get_limits(data)
    scaled = np.clip((data - low) / ((high - low) or 1.0), 0.0, 1.0)
    return (scaled * 255).astype("uint8")


def preview(path: str, hdu: int | None = None) -> dict:
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=True, lazy_load_hdus=False)
    except (OSError, ValueError) as e:
        raise FilesError(415, f"path: not a readable FITS file ({e})") from None
    with hdul:
        listing = []
        for i, h in enumerate(hdul):
            shape = list(h.shape) if getattr(h, "shape", None) is not None and h.is_image else None
            listing.append({"index": i, "name": h.name, "kind": type(h).__name__, "shape": shape})
        if hdu is None:  # the first image HDU with pixels
            hdu = next((h["index"] for h in listing if h["shape"] and len(h["shape"]) >= 2), 0)
        if not 0 <= hdu < len(hdul):
            raise FilesError(400, f"hdu: between 0 and {len(hdul) - 1}")
        chosen = hdul[hdu]
        result = {"hdus": listing, "hdu": hdu, "header": chosen.header.tostring(sep="\n"), "image": None}
        if chosen.is_image and chosen.data is not None and chosen.data.ndim >= 2:
            png = _png_gray(_image_of(chosen.data))
            result["image"] = "data:image/png;base64," + base64.b64encode(png).decode()
        return result
