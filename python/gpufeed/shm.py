"""gpufeed's slabs seen from this process: shared mappings and zero-copy numpy views of columns.

A slab is a memfd in the server process. We open it through ``/proc/<pid>/fd/<fd>``, map it
MAP_SHARED and close the descriptor at once: the mapping alone keeps the memory alive, and it is
freed when the last mapping (ours, the server's) goes. Nothing is ever created in /dev/shm.
"""
from __future__ import annotations

import mmap
import os
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from .errors import PROTOCOL, GpufeedError

# gpufeed dtypes (src/dataset/types.ts) to numpy; bool is one byte 0/1, strings and binary are bytes.
DTYPES: Dict[str, np.dtype] = {
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
    "int64": np.dtype(np.int64),
    "uint64": np.dtype(np.uint64),
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "bool": np.dtype(np.bool_),
    "string": np.dtype(np.uint8),
    "binary": np.dtype(np.uint8),
}


class VarColumn(NamedTuple):
    """A variable-length column in Arrow's layout: row i is ``values[offsets[i]:offsets[i + 1]]``."""

    offsets: Any
    values: Any


class PaddedColumn(NamedTuple):
    """A variable-length column padded to ``[rows, max_len]`` (a copy), with each row's length."""

    values: Any
    lengths: Any


class SlabMap:
    """One slab mapped into this process, as a flat uint8 array over the mapping."""

    def __init__(self, pid: int, desc: Dict[str, Any]) -> None:
        self.id: int = int(desc["id"])
        self.bytes: int = int(desc["bytes"])
        path = f"/proc/{int(pid)}/fd/{int(desc['fd'])}"
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise GpufeedError(
                "GPUFEED_NATIVE", f"cannot open slab {self.id} at {path}: {e.strerror}", {"path": path, "slabId": self.id}
            ) from None
        try:
            # Writable so torch.from_numpy gets a writable array (it warns otherwise); gpufeed never
            # reads back what the consumer writes.
            self._mm: Optional[mmap.mmap] = mmap.mmap(fd, self.bytes, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)  # the mapping keeps the memory alive, not the descriptor
        self.base: Optional[np.ndarray] = np.frombuffer(self._mm, dtype=np.uint8)

    @property
    def address(self) -> int:
        assert self.base is not None
        return int(self.base.ctypes.data)

    def close(self) -> bool:
        """Unmaps, unless arrays handed out still use the mapping: then it goes with the last of them
        (the memory stays valid for them). True when unmapped now."""
        self.base = None
        mm, self._mm = self._mm, None
        if mm is None:
            return True
        try:
            mm.close()
            return True
        except BufferError:
            return False


class ColumnRegion(NamedTuple):
    name: str
    kind: str
    dtype: np.dtype
    shape: Tuple[int, ...]
    row_bytes: int
    values_offset: int
    values_bytes: int
    offsets_offset: int
    valid_offset: int

    @property
    def variable(self) -> bool:
        return self.offsets_offset >= 0


def parse_layout(layout: Dict[str, Any], slot_limit: int) -> List[ColumnRegion]:
    """Regions of every column, checked to lie inside the smallest slab (``slot_limit`` bytes)."""
    regions: List[ColumnRegion] = []
    batch_size = int(layout["batchSize"])
    for c in layout["columns"]:
        dtype = DTYPES.get(c["dtype"])
        if dtype is None:
            raise GpufeedError(PROTOCOL, f"bridge protocol: column {c['name']} has unknown dtype {c['dtype']!r}")
        r = ColumnRegion(
            name=str(c["name"]),
            kind=str(c["kind"]),
            dtype=dtype,
            shape=tuple(int(d) for d in c.get("shape") or ()),
            row_bytes=int(c["rowBytes"]),
            values_offset=int(c["valuesOffset"]),
            values_bytes=int(c["valuesBytes"]),
            offsets_offset=int(c["offsetsOffset"]),
            valid_offset=int(c["validOffset"]),
        )
        ends = [r.values_offset + r.values_bytes]
        if r.variable:
            ends.append(r.offsets_offset + 4 * (batch_size + 1))
        if r.valid_offset >= 0:
            ends.append(r.valid_offset + batch_size)
        if max(ends) > slot_limit or min(r.values_offset, r.values_bytes) < 0:
            raise GpufeedError(PROTOCOL, f"bridge protocol: column {r.name} lies outside its slab ({max(ends)} > {slot_limit} bytes)")
        regions.append(r)
    return regions


def column_views(
    base: np.ndarray, r: ColumnRegion, rows: int, used: Optional[int]
) -> Tuple[Union[np.ndarray, VarColumn], Optional[np.ndarray]]:
    """Zero-copy views of one column of a batch of ``rows`` rows, and its validity (or None)."""
    valid = base[r.valid_offset : r.valid_offset + rows].view(np.bool_) if r.valid_offset >= 0 else None
    item = r.dtype.itemsize
    if r.variable:
        offsets = base[r.offsets_offset : r.offsets_offset + 4 * (rows + 1)].view(np.int32)
        end = int(offsets[rows]) if rows >= 0 else 0
        if used is not None and used != end:
            raise GpufeedError(PROTOCOL, f"bridge protocol: column {r.name} uses {end} values in memory, the server said {used}")
        if end < 0 or end * item > r.values_bytes:
            raise GpufeedError(PROTOCOL, f"bridge protocol: column {r.name} claims {end} values, more than its region holds")
        values = base[r.values_offset : r.values_offset + end * item].view(r.dtype)
        return VarColumn(offsets, values), valid
    values = base[r.values_offset : r.values_offset + rows * r.row_bytes].view(r.dtype)
    return values.reshape((rows,) + r.shape), valid


def pad_column(col: VarColumn, pad_value: Any = 0) -> PaddedColumn:
    """``[rows, max_len]`` copy of a variable-length column (numpy), padded with ``pad_value``."""
    offsets = np.asarray(col.offsets, dtype=np.int64)
    values = np.asarray(col.values)
    lengths = np.diff(offsets)
    rows = len(lengths)
    width = int(lengths.max()) if rows else 0
    out = np.full((rows, width), pad_value, dtype=values.dtype)
    if values.size:
        row_of = np.repeat(np.arange(rows), lengths)
        col_of = np.arange(int(offsets[-1] - offsets[0])) - np.repeat(offsets[:-1] - offsets[0], lengths)
        out[row_of, col_of] = values[int(offsets[0]) : int(offsets[-1])]
    return PaddedColumn(out, lengths)
