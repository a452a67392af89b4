"""A stand-in for torch, just enough of its surface for gpufeed's torch path to be exercised where
torch is not installed: from_numpy, CUDA availability, cudart host (un)registration, events.
It records what gpufeed does with it; tests/test_fake_torch.py checks the record."""
import numpy as _np

from . import cuda  # noqa: F401
from .utils import data as _data  # noqa: F401

int32, int64, bool = "int32", "int64", "bool"


class Tensor:
    def __init__(self, arr):
        self.arr = arr
        self.dtype = str(arr.dtype)
        self.shape = arr.shape

    def numpy(self):
        return self.arr

    def tolist(self):
        return self.arr.tolist()

    def to(self, device, non_blocking=False):
        cuda.log.append(("copy", device, non_blocking))
        return Tensor(self.arr.copy())

    def __getitem__(self, k):
        return Tensor(self.arr[k]) if isinstance(self.arr[k], _np.ndarray) else self.arr[k]

    def __len__(self):
        return len(self.arr)


def from_numpy(arr):
    if not isinstance(arr, _np.ndarray):
        raise TypeError("expected np.ndarray")
    if arr.dtype == _np.uint32:
        raise TypeError("can't convert np.ndarray of type numpy.uint32")  # like torch < 2.3
    return Tensor(arr)
