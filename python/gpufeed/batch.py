"""A batch as the training loop sees it: columns as arrays (torch tensors or numpy arrays) over
gpufeed's shared memory, no copy.

Lifetime: a batch's arrays are valid until the loop asks for the next batch, unless it was kept
(``batch.keep()``), in which case until ``batch.release()``. After that the slot is refilled with
other rows: copy what must outlive it (``np.array(x)``, ``t.clone()``), or keep the batch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .errors import CLOSED, GpufeedError
from .shm import PaddedColumn, VarColumn

if TYPE_CHECKING:
    from .loader import Loader


class Batch:
    """One batch. ``batch["x"]`` is column ``x``: a ``[rows, *shape]`` array for fixed-width
    columns; for variable-length ones a ``VarColumn(offsets, values)`` (Arrow layout) or, with
    ``pad=True``, a ``PaddedColumn(values, lengths)``. Not a Mapping on purpose: the PyTorch
    DataLoader hands it through unchanged with ``batch_size=None``."""

    __slots__ = ("epoch", "step", "seq", "ids", "stream", "size", "_columns", "_valid", "_loader", "_session", "__weakref__")

    def __init__(
        self,
        loader: "Loader",
        session: int,
        seq: int,
        epoch: int,
        step: int,
        ids: np.ndarray,
        columns: Dict[str, Any],
        valid: Dict[str, Any],
        stream: Optional[np.ndarray] = None,
    ) -> None:
        self.epoch = epoch
        #: Step within the epoch on this rank, from 0.
        self.step = step
        #: Per stream, from 1; what the server knows the batch by.
        self.seq = seq
        #: Global sample ids, in row order (int64 numpy array).
        self.ids = ids
        #: Mixtures: per row, the index of the stream (dataset) it came from (int32 numpy array);
        #: None for one dataset.
        self.stream = stream
        self.size = int(ids.shape[0])
        self._columns: Optional[Dict[str, Any]] = columns
        self._valid: Optional[Dict[str, Any]] = valid
        self._loader = loader
        self._session = session

    # -- columns -------------------------------------------------------------------------------

    @property
    def columns(self) -> Dict[str, Any]:
        if self._columns is None:
            raise GpufeedError(CLOSED, f"batch {self.epoch}:{self.step} was released; its memory now holds other rows")
        return self._columns

    @property
    def valid(self) -> Dict[str, Any]:
        """Nullable columns: a bool array per column, True where the row has a value."""
        if self._valid is None:
            raise GpufeedError(CLOSED, f"batch {self.epoch}:{self.step} was released; its memory now holds other rows")
        return self._valid

    def __getitem__(self, name: str) -> Any:
        cols = self.columns
        if name not in cols:
            raise KeyError(name)
        return cols[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def keys(self) -> List[str]:
        return list(self.columns)

    def items(self) -> List[Tuple[str, Any]]:
        return list(self.columns.items())

    def values(self) -> List[Any]:
        return list(self.columns.values())

    def strings(self, name: str, errors: str = "replace") -> List[Optional[str]]:
        """A string (or binary) column decoded to Python strings (a copy); None for null rows."""
        col = self[name]
        if isinstance(col, PaddedColumn):
            vals = _np(col.values)
            lens = _np(col.lengths)
            out: List[Optional[str]] = [bytes(vals[i, : int(lens[i])]).decode("utf-8", errors) for i in range(len(lens))]
        elif isinstance(col, VarColumn):
            offs = _np(col.offsets)
            vals = _np(col.values)
            out = [bytes(vals[int(offs[i]) : int(offs[i + 1])]).decode("utf-8", errors) for i in range(len(offs) - 1)]
        else:
            raise GpufeedError("GPUFEED_INVALID_OPTION", f"column {name} is not variable-length", {"column": name})
        valid = self.valid.get(name)
        if valid is not None:
            v = _np(valid)
            out = [s if v[i] else None for i, s in enumerate(out)]
        return out

    # -- lifetime ------------------------------------------------------------------------------

    @property
    def released(self) -> bool:
        return self._columns is None

    def keep(self) -> "Batch":
        """Keeps this batch past the next one; then call ``release()``. Each kept batch holds one of
        the loader's ``slots``: keeping them all stalls the loader (an error says so)."""
        self._loader.keep(self)
        return self

    def release(self) -> None:
        """Hands the memory back to gpufeed. Idempotent."""
        self._loader.release(self)

    def _invalidate(self) -> None:
        self._columns = None
        self._valid = None

    # -- torch conveniences --------------------------------------------------------------------

    def pin_memory(self, device: Any = None) -> "Batch":
        """Already pinned: lets ``DataLoader(pin_memory=True)`` hand the batch through."""
        return self

    def to(self, device: Any, non_blocking: bool = True) -> Dict[str, Any]:
        """Every column copied to ``device`` (torch batches only): a dict of tensors, VarColumn and
        PaddedColumn with tensor fields. Asynchronous with non_blocking=True from pinned memory; the
        loader waits for such copies before the memory is reused (see Loader)."""

        def move(t: Any) -> Any:
            if not hasattr(t, "to"):
                raise GpufeedError("GPUFEED_INVALID_OPTION", "batch.to() needs torch tensors; this loader yields numpy arrays", {"option": "as_numpy"})
            return t.to(device, non_blocking=non_blocking)

        out: Dict[str, Any] = {}
        for name, col in self.columns.items():
            if isinstance(col, (VarColumn, PaddedColumn)):
                out[name] = type(col)(*(move(f) for f in col))
            else:
                out[name] = move(col)
        return out

    def __repr__(self) -> str:
        state = "released" if self.released else ", ".join(self.columns)
        return f"<gpufeed.Batch epoch={self.epoch} step={self.step} rows={self.size} [{state}]>"


def _np(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else a.numpy()
