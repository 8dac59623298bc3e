"""Compressors that write self-contained frames (gzip members, zstd frames).

Concatenated frames decompress as one stream (gzip -d, zstd -d, GNU tar, Python's gzip module), which
lets the packer write the patient files first and the manifest header frame afterwards, yet place
the header frame first in the file.
"""
from __future__ import annotations

import zlib

import zstandard

# PDAS's defaults favour throughput: CT data compresses about as well at level 1 as at 6.
DEFAULT_LEVELS = {"gzip": 1, "zstd": 3}


class FrameCompressor:
    """Compress one frame: ``compress()`` chunks, then ``finish()`` once."""

    def __init__(self, codec: str, level: int = 0):
        self.codec = codec
        level = level or DEFAULT_LEVELS[codec]
        if codec == "gzip":
            self._obj = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip header, mtime 0
        elif codec == "zstd":
            self._obj = zstandard.ZstdCompressor(level=level, write_checksum=True).compressobj()
        else:
            raise ValueError(f"unknown codec {codec!r} (use gzip or zstd)")

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def finish(self) -> bytes:
        return self._obj.flush()


def compress_frame(codec: str, level: int, data: bytes) -> bytes:
    compressor = FrameCompressor(codec, level)
    return compressor.compress(data) + compressor.finish()


def open_decompressed(codec: str, raw):
    """A readable stream of the decompressed archive across all frames."""
    if codec == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=raw, mode="rb")
    if codec == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    raise ValueError(f"unknown codec {codec!r}")
