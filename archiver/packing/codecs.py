"""Compressors that write self-contained frames (gzip members, zstd frames).

Concatenated frames decompress as one stream (gzip -d, zstd -d, GNU tar, Python's gzip module), which
lets the packer write the patient files first and the manifest header frame afterwards, yet place
the header frame first in the file.
"""
from __future__ import annotations

import zlib

import zstandard
from isal import igzip, isal_zlib

# PDAS's defaults favour throughput: CT data compresses about as well at level 1 as at 6.
DEFAULT_LEVELS = {"gzip": 1, "zstd": 3}


class FrameCompressor:
    """Compress one frame: ``compress()`` chunks, then ``finish()`` once."""

    def __init__(self, codec: str, level: int = 0):
        self.codec = codec
        level = level or DEFAULT_LEVELS[codec]
        if codec == "gzip":
            # ISA-L writes standard gzip several times faster than zlib at levels 1-3; the higher
            # levels a site may ask for exist only in zlib. wbits 31: a gzip header, mtime 0.
            engine = isal_zlib if level <= isal_zlib.ISAL_BEST_COMPRESSION else zlib
            self._obj = engine.compressobj(level, engine.DEFLATED, 31)
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
        return igzip.IGzipFile(fileobj=raw, mode="rb")  # reads every gzip member, like gzip -d
    if codec == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    raise ValueError(f"unknown codec {codec!r}")
