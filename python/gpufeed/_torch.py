"""Optional PyTorch integration. Everything torch-specific lives here, imported lazily and guarded,
so the client works (with numpy arrays) where torch is absent.

Set ``GPUFEED_NO_TORCH=1`` to ignore an installed torch (numpy batches, no IterableDataset base).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

log = logging.getLogger("gpufeed")

_OFF = {"1", "true", "yes", "on"}


def _load() -> Any:
    if os.environ.get("GPUFEED_NO_TORCH", "").strip().lower() in _OFF:
        return None
    try:
        import torch  # noqa: F401

        return torch
    except ImportError:
        return None


torch: Any = _load()

if torch is not None:
    from torch.utils.data import IterableDataset as DatasetBase
else:

    class DatasetBase:  # type: ignore[no-redef]
        """Stands in for torch.utils.data.IterableDataset when torch is absent."""


def in_dataloader_worker() -> bool:
    if torch is None:
        return False
    try:
        from torch.utils.data import get_worker_info

        return get_worker_info() is not None
    except ImportError:
        return False


_unconvertible: set = set()


def to_tensor(arr: Any) -> Any:
    """A tensor over the same memory as a numpy array (no copy); the array itself for dtypes this
    torch cannot hold (unsigned 16/32/64-bit before torch 2.3), with one warning per dtype."""
    if arr.dtype in _unconvertible:
        return arr
    try:
        return torch.from_numpy(arr)
    except TypeError as e:
        _unconvertible.add(arr.dtype)
        log.warning("gpufeed: torch cannot hold %s arrays (%s); such columns stay numpy arrays", arr.dtype, e)
        return arr


def cuda_usable() -> bool:
    if torch is None:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver install must not break the numpy/CPU path
        return False


def cuda_initialized() -> bool:
    return torch is not None and bool(torch.cuda.is_initialized())


def host_register(address: int, nbytes: int) -> Optional[str]:
    """Page-locks our mapping for CUDA (cudaHostRegister, default flags: with unified addressing the
    memory is portable and mapped), so copies from it run as DMA, asynchronously with
    non_blocking=True. The server registered its own mapping; registration is per process. Returns
    None when registered, else why not."""
    try:
        cudart = torch.cuda.cudart()
        rc = int(cudart.cudaHostRegister(address, nbytes, 0))
    except Exception as e:  # noqa: BLE001 - any failure means: stay pageable, still correct
        return f"{e.__class__.__name__}: {e}"
    return None if rc == 0 else f"cudaHostRegister returned cudaError {rc}"


def host_unregister(address: int) -> None:
    try:
        torch.cuda.cudart().cudaHostUnregister(address)
    except Exception:  # noqa: BLE001 - at teardown; the mapping goes anyway
        pass


def record_event() -> Any:
    """An event on the current CUDA stream: once it completes, copies queued before it are done."""
    ev = torch.cuda.Event()
    ev.record()
    return ev
