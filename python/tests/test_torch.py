"""The torch path: tensors over the shared memory, DataLoader compatibility, CUDA registration.
Skipped where torch is not installed (the numpy path is covered by the other tests)."""
from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

import gpufeed  # noqa: E402
from conftest import SEQ, make_row, open_loader  # noqa: E402


def test_batches_are_tensors_without_copy(datasets):
    with open_loader(datasets["arrow"], batch_size=32, as_numpy=False, epochs=1) as loader:
        b = next(iter(loader))
        t = b["tokens"]
        assert isinstance(t, torch.Tensor) and t.dtype == torch.int32 and tuple(t.shape) == (32, SEQ)
        assert t.tolist() == [make_row(int(i))["tokens"] for i in b.ids]
        assert isinstance(b["label"], torch.Tensor) and b["label"].dtype == torch.int64
        assert isinstance(b["tags"], gpufeed.VarColumn) and b["tags"].offsets.dtype == torch.int32
        assert b.strings("text") == [make_row(int(i))["text"] for i in b.ids]
        assert b.valid["maybe"].dtype == torch.bool


def test_works_as_a_dataloader_dataset(datasets):
    from torch.utils.data import DataLoader, IterableDataset

    loader = open_loader(datasets["arrow"], batch_size=32, as_numpy=False, epochs=2)
    assert isinstance(loader, IterableDataset)
    dl = DataLoader(loader, batch_size=None, num_workers=0, pin_memory=False)
    epochs = [[b.ids.tolist() for b in dl] for _ in range(2)]
    assert [sorted(i for ids in e for i in ids) for e in epochs] == [list(range(203))] * 2
    with pytest.raises(Exception) as e:
        list(DataLoader(loader, batch_size=None, num_workers=1))
    assert "num_workers=0" in str(e.value)
    loader.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_registered_and_async_copies(datasets):
    with open_loader(datasets["arrow"], batch_size=32, as_numpy=False, epochs=1, pin=True) as loader:
        it = iter(loader)
        b = next(it)
        assert loader.cuda_registered
        assert b["tokens"].is_pinned()
        seen = []
        for b in itertools.chain([b], it):
            dev = b.to("cuda", non_blocking=True)
            # Asking for the next batch before the copy is done must not corrupt it (deferred release).
            seen.append((b.ids.copy(), dev["tokens"]))
        torch.cuda.synchronize()
        for ids, t in seen:
            assert t.cpu().tolist() == [make_row(int(i))["tokens"] for i in ids]
