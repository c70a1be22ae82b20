"""How the SQLite store keeps a dense vector: float32 (exact) or float16 (half the bytes).

A row's encoding is told by its length (4 or 2 bytes a dimension), so a store may hold both: the setting
`vector_storage` decides how new versions are written, and reads decode each row as it was written. Search
always runs on float32 matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engram.config import VectorStorage
from engram.errors import CorruptStore

__all__ = ["VectorStorage", "as_read", "decode", "encode", "valid_sizes"]

_TYPES: dict[str, str] = {"float32": "<f4", "float16": "<f2"}
_BY_SIZE = {4: "<f4", 2: "<f2"}


def encode(vector: np.ndarray, storage: VectorStorage) -> bytes:
    return np.ascontiguousarray(vector, dtype=_TYPES[storage]).tobytes()


def as_read(vector: np.ndarray, storage: VectorStorage) -> np.ndarray:
    """`vector` as a read will decode it once stored as `storage` (float16 rounds it): what a writer's own cache
    must hold, so that its searches score what every other process's do."""
    return np.asarray(vector, dtype=_TYPES[storage]).astype(np.float32)


def valid_sizes(dimension: int) -> tuple[int, ...]:
    """The byte lengths a stored vector of `dimension` may have."""
    return tuple(size * dimension for size in _BY_SIZE)


def decode(blobs: Sequence[bytes], dimension: int) -> np.ndarray:
    """Rows of float32 from stored vectors of `dimension` (each float32 or float16)."""
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    width = len(blobs[0])
    if all(len(blob) == width for blob in blobs):  # the usual case: one encoding, decoded in one call
        return _rows(b"".join(blobs), width, len(blobs), dimension)
    return np.vstack([_rows(blob, len(blob), 1, dimension) for blob in blobs])


def _rows(data: bytes, width: int, count: int, dimension: int) -> np.ndarray:
    kind = _BY_SIZE.get(width // dimension) if dimension and width % dimension == 0 else None
    if kind is None:
        raise CorruptStore(f"a stored vector of {width} bytes is neither float32 nor float16 of dimension {dimension}")
    return np.frombuffer(data, dtype=kind).reshape(count, dimension).astype(np.float32)
