"""The IDX format of MNIST-family files (LeCun et al.), plain or gzipped, read and written."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from atml.errors import DataCorruptError

UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataCorruptError(
            f"{path} is not a readable gzip file ({exc}); delete it and fetch it again"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UBYTE:
        raise DataCorruptError(
            f"{path} is not an unsigned-byte IDX file (bad magic number); delete it and fetch it again"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataCorruptError(f"{path} is truncated inside its IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataCorruptError(
            f"{path} holds {len(raw) - header} bytes of data but its header promises {expected} for shape "
            f"{shape}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = (
        bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
