"""Reader and writer for the IDX format used by MNIST (optionally gzipped)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from cgatrain.data.common import DataError

# IDX type code (third magic byte) -> big-endian numpy dtype
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """Return the file contents, transparently gunzipping ``*.gz`` files."""
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read()
        except (EOFError, OSError) as error:  # a download cut short, or not gzip at all
            raise DataError(f"{path}: cannot be read as gzip ({error}); download it again") from None
    return path.read_bytes()


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into an array with native byte order.

    Layout: two zero bytes, a type code, the number of dims, then one big-endian
    uint32 per dim, then the data in big-endian C order.
    """
    dtype, shape, header_end = _checked_header(raw, len(raw), source)
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    # convert to native order so torch.from_numpy accepts it
    return data.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) from disk."""
    path = Path(path)
    return parse_idx(_read_bytes(path), source=str(path))


def idx_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(dtype, shape) of an IDX file (raw or ``.gz``), after checking that its payload has the size the
    header implies, without keeping the data: a ``.gz`` file is decompressed in chunks and counted."""
    path = Path(path)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(4)
                ndim = head[3] if len(head) == 4 else 0
                head += handle.read(4 * ndim)
                size = len(head)
                while chunk := handle.read(1 << 22):
                    size += len(chunk)
        except (EOFError, OSError) as error:  # a download cut short, or not gzip at all
            raise DataError(f"{path}: cannot be read as gzip ({error}); download it again") from None
    else:
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
                head += handle.read(4 * head[3]) if len(head) == 4 else b""
            size = path.stat().st_size
        except OSError as error:
            raise DataError(f"{path}: cannot be read ({error.strerror})") from None
    dtype, shape, _ = _checked_header(head, size, str(path))
    return dtype.newbyteorder("="), shape


def _checked_header(head: bytes, size: int, source: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(big-endian dtype, shape, header length) of IDX bytes starting with `head`, `size` bytes in all; DataError
    naming `source` for a bad magic number, type code or header, or a payload of another size than the header's."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(f"{source}: not an IDX file (bad magic number)")
    type_code, ndim = head[2], head[3]
    if type_code not in _IDX_DTYPES:
        raise DataError(f"{source}: unknown IDX type code 0x{type_code:02x}")
    header_end = 4 + 4 * ndim
    if len(head) < header_end:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(head, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size - header_end != expected:
        raise DataError(f"{source}: IDX payload is {size - header_end} bytes, header implies {expected}")
    return dtype, shape, header_end


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip it when the name ends in ``.gz``."""
    path = Path(path)
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise DataError(f"cannot write dtype {array.dtype} as IDX")
    header = bytes([0, 0, codes[native], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(native.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
