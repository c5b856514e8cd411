"""Image thumbnails.  **Planted leak (candidate):** :func:`cache_thumbnail` keeps a copy of every source image in
a module-level dict under a per-call key and never evicts it, so each worker process's RSS grows with every task."""

from __future__ import annotations

import random
import time
import zlib
from collections import OrderedDict
from typing import Any

from .app import app, candidate

LRU_SIZE = 32
_LRU: OrderedDict[tuple[int, int], bytes] = OrderedDict()  # baseline: bounded, holds small thumbnails
_RENDERED: dict[str, bytearray] = {}  # candidate: unbounded, holds whole source images


@app.task(name="demo.thumbnails.render")
def render_thumbnail(image_id: int, width: int = 1024, height: int = 768, size: int = 64) -> dict[str, Any]:
    """Load a (synthetic, grayscale) source image, box-filter it down to ``size`` pixels wide, cache the result."""
    pixels = load_source_image(image_id, width, height)
    thumb = downscale(pixels, width, height, size)
    cache_thumbnail(image_id, size, pixels, thumb)
    return {"image_id": image_id, "bytes": len(thumb), "crc32": zlib.crc32(thumb), "cached": cache_size()}


def load_source_image(image_id: int, width: int, height: int) -> bytes:
    """The source image's pixels (deterministic per image id), as an object store would return them."""
    return random.Random(image_id).randbytes(width * height)


def downscale(pixels: bytes, width: int, height: int, size: int) -> bytes:
    """Average 4×4 samples of each output pixel's block (pure Python, CPU-bound)."""
    out_w = size
    out_h = max(1, size * height // width)
    bw, bh = width // out_w, height // out_h
    sx, sy = max(1, bw // 4), max(1, bh // 4)
    out = bytearray(out_w * out_h)
    for oy in range(out_h):
        row0 = oy * bh
        for ox in range(out_w):
            col0 = ox * bw
            acc = 0
            n = 0
            for y in range(row0, row0 + bh, sy):
                base = y * width
                for x in range(col0, col0 + bw, sx):
                    acc += pixels[base + x]
                    n += 1
            out[oy * out_w + ox] = acc // n
    return bytes(out)


def cache_thumbnail(image_id: int, size: int, source: bytes, thumb: bytes) -> None:
    """Remember the rendered thumbnail for later requests."""
    if candidate():
        # Leak: the key is unique per call and the whole source image is copied in; nothing ever evicts it.
        key = f"{image_id}/{size}/{time.monotonic_ns()}"
        _RENDERED[key] = bytearray(source)
        return
    _LRU[(image_id, size)] = thumb
    _LRU.move_to_end((image_id, size))
    while len(_LRU) > LRU_SIZE:
        _LRU.popitem(last=False)


def cache_size() -> int:
    """Bytes held by this process's thumbnail caches."""
    return sum(map(len, _LRU.values())) + sum(map(len, _RENDERED.values()))
