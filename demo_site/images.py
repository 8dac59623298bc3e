"""CT-like voxel data for ``ImageSet_<n>.img``: fast, deterministic, compressible like real CT.

Pinnacle stores a CT as raw 16-bit unsigned voxels, CT number + 1000 (air 0, water about 1000,
bone 1400-2500), slice after slice. A real scan is mostly air outside an elliptic body with
smooth tissue regions and a few units of quantum noise: gzip shrinks it to roughly half. The
same shape here lets archive sizes, packing times and compression ratios in tests and benchmarks
look like a hospital's.

Speed matters (a 2 GB site should take seconds): a handful of base slices is drawn once per image
set, and each slice is a base slice plus a window of one shared noise pool, written in chunks of
many slices at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

AIR, FAT, SOFT_TISSUE, LUNG, BONE = 0, 910, 1045, 180, 1650
NOISE_SIGMA = 14.0  # CT-number units; with it gzip keeps about 35 % of a volume, as with real CT
_BASE_SLICES = 6  # distinct anatomical levels per image set (the body narrows and widens along z)
_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Volume:
    x_dim: int
    y_dim: int
    z_dim: int

    @property
    def nbytes(self) -> int:
        return self.x_dim * self.y_dim * self.z_dim * 2


def _base_slices(volume: Volume, *, region: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(levels, masks): ``_BASE_SLICES`` noise-free slices (int16) and their body masks."""
    ny, nx = volume.y_dim, volume.x_dim
    y, x = np.ogrid[-1.0:1.0:complex(0, ny), -1.0:1.0:complex(0, nx)]
    levels = np.zeros((_BASE_SLICES, ny, nx), dtype=np.int16)
    masks = np.zeros((_BASE_SLICES, ny, nx), dtype=bool)
    for level in range(_BASE_SLICES):
        scale = 1.0 - 0.06 * abs(level - _BASE_SLICES / 2) / _BASE_SLICES + rng.uniform(-0.02, 0.02)
        if region == "head":
            a, b = 0.55 * scale, 0.68 * scale
        else:
            a, b = 0.86 * scale, 0.58 * scale
        y0 = 0.05
        body = (x / a) ** 2 + ((y - y0) / b) ** 2 <= 1.0
        inner = (x / (a - 0.07)) ** 2 + ((y - y0) / (b - 0.07)) ** 2 <= 1.0
        image = np.where(body, FAT, AIR).astype(np.int16)
        image[inner] = SOFT_TISSUE
        if region == "head":
            skull = inner & ((x / (a - 0.12)) ** 2 + ((y - y0) / (b - 0.12)) ** 2 > 1.0)
            image[skull] = BONE + 300
        else:
            if region == "chest":
                for side in (-1, 1):
                    lung = ((x - side * 0.38 * a) / (0.30 * a)) ** 2 + ((y - y0 + 0.05) / (0.62 * b)) ** 2 <= 1.0
                    image[lung & inner] = LUNG
            spine = (x / 0.09) ** 2 + ((y - y0 - 0.6 * b) / 0.09) ** 2 <= 1.0
            image[spine] = BONE
        # Gentle density variation so neighbouring regions are not perfectly flat.
        image[inner] += (12 * np.sin(3.1 * x + level) * np.cos(2.3 * y)).astype(np.int16)[inner]
        levels[level], masks[level] = image, body
    return levels, masks


def write_ct_volume(path: Path, volume: Volume, *, seed: int, region: str = "chest") -> int:
    """Write ``path`` (little-endian uint16, slice-major, as the header's ``byte_order = 0`` says).

    Same ``seed`` and ``volume`` give the same bytes. Returns the number of bytes written.
    """
    rng = np.random.default_rng(seed)
    levels, masks = _base_slices(volume, region=region, rng=rng)
    pixels = volume.x_dim * volume.y_dim
    # One noise pool shared by all slices; each slice reads it from its own offset.
    pool = np.rint(rng.normal(0.0, NOISE_SIGMA, size=pixels + 8191)).astype(np.int16)
    offsets = rng.integers(0, 8192, size=volume.z_dim)
    y, x = np.ogrid[-1.0:1.0:complex(0, volume.y_dim), -1.0:1.0:complex(0, volume.x_dim)]
    field = x ** 2 + y ** 2 <= 1.0
    per_chunk = max(1, _CHUNK_BYTES // (pixels * 2))
    written = 0
    with open(path, "wb") as handle:
        for start in range(0, volume.z_dim, per_chunk):
            count = min(per_chunk, volume.z_dim - start)
            chunk = np.empty((count, volume.y_dim, volume.x_dim), dtype=np.int16)
            for i in range(count):
                z = start + i
                level = min(_BASE_SLICES - 1, z * _BASE_SLICES // max(1, volume.z_dim))
                noise = pool[offsets[z]:offsets[z] + pixels].reshape(volume.y_dim, volume.x_dim)
                np.add(levels[level], noise, out=chunk[i])
                # Outside the body only the air of the scan field carries noise (clipped at 0, as
                # Pinnacle stores it); the corners outside the reconstruction circle are exactly 0.
                np.copyto(chunk[i], noise, where=~masks[level])
                chunk[i][~field] = AIR
            np.clip(chunk, 0, 4095, out=chunk)
            data = chunk.astype("<u2", copy=False).tobytes()
            handle.write(data)
            written += len(data)
    return written


def write_noise_volume(path: Path, volume: Volume, *, seed: int) -> int:
    """Write ``path`` with random bytes of the volume's size: incompressible, unlike a CT.

    Same ``seed`` and ``volume`` give the same bytes. Returns the number of bytes written.
    """
    data = np.random.default_rng(seed).bytes(volume.nbytes)
    path.write_bytes(data)
    return len(data)
