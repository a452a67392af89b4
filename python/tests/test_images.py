"""Image transforms through the Python client: the same tensors as `gpufeed dump`, zero-copy
uint8 [B, 3, S, S] arrays, Hugging Face layout Parquet, and errors naming the option."""
from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, dump, open_loader, run_cli

import gpufeed

WRITE_FOLDER = """
import { writeImageFolder } from %s;
const files = await writeImageFolder(process.argv[1], ['bird', 'ant'], 6, 80, 60, 9);
process.stdout.write(JSON.stringify(files));
"""


def write_folder(root: Path) -> list:
    module = json.dumps((ROOT / "dist" / "benchmarks" / "image-dataset.js").as_uri())
    p = subprocess.run(["node", "--input-type=module", "-e", WRITE_FOLDER % module, str(root)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def image_ds(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gpufeed-images")
    files = write_folder(root / "train")
    out = root / "ds"
    run_cli("prep", str(root / "train"), "--out", str(out), "--images", "--workers", "0")
    return str(out), files


def test_train_tensors_equal_dump_and_are_uint8_chw(image_ds):
    ds, _ = image_ds
    want = dump(ds, "--image", "image=train:16:chw", "--batch-size", "4", "--seed", "3", "--epochs", "1", "--columns", "image,label", "--workers", "1")
    with open_loader(ds, batch_size=4, seed=3, epochs=1, columns=["image", "label"], transforms={"image": {"kind": "train", "size": 16, "layout": "CHW"}}) as loader:
        got = []
        for batch in loader:
            img = batch["image"]
            assert img.dtype == np.uint8 and img.shape == (batch.size, 3, 16, 16)
            got.append((list(batch.ids), np.asarray(img).reshape(-1).tolist(), np.asarray(batch["label"]).tolist()))
    assert len(got) == len(want) == 3
    for (ids, pixels, labels), w in zip(got, want):
        assert ids == w["ids"]
        assert pixels == w["columns"]["image"]
        assert labels == w["columns"]["label"]
    # Classes sorted: ant (0) before bird (1).
    assert sorted(set(sum((g[2] for g in got), []))) == [0, 1]
    manifest = json.loads((Path(ds) / "index.json").read_text())
    assert manifest["classes"] == ["ant", "bird"]


def test_image_spec_kwarg_equals_transforms_dict(image_ds):
    ds, _ = image_ds
    runs = []
    for kw in ({"image": "image=eval:12:hwc:gray"}, {"transforms": {"image": {"kind": "eval", "size": 12, "layout": "HWC", "color": "gray"}}}):
        with open_loader(ds, batch_size=6, epochs=1, shuffle="none", **kw) as loader:
            runs.append([np.asarray(b["image"]).copy() for b in loader])
    assert [r.shape for r in runs[0]] == [(6, 12, 12, 1), (6, 12, 12, 1)]
    for a, b in zip(*runs):
        assert np.array_equal(a, b)


def test_torch_tensor_when_torch_imports(image_ds):
    torch = pytest.importorskip("torch")
    ds, _ = image_ds
    with gpufeed.Loader(ds, batch_size=4, epochs=1, image="image=train:8", workers=1, timeout=120.0, start_timeout=120.0) as loader:
        batch = next(iter(loader))
        assert isinstance(batch["image"], torch.Tensor)
        assert batch["image"].dtype == torch.uint8 and tuple(batch["image"].shape) == (4, 3, 8, 8)


def test_bad_transform_option_names_it(image_ds):
    ds, _ = image_ds
    with pytest.raises(gpufeed.GpufeedError) as e:
        with open_loader(ds, batch_size=2, transforms={"image": {"kind": "bogus", "size": 8}}) as loader:
            next(iter(loader))
    assert e.value.code == "GPUFEED_INVALID_OPTION"
    assert "transforms.image.kind" in str(e.value)
    with pytest.raises(gpufeed.GpufeedError):
        gpufeed.Loader(ds, batch_size=2, transforms=["image"])


def test_hugging_face_parquet_eval_against_pillow(image_ds, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    Image = pytest.importorskip("PIL.Image")
    _, files = image_ds
    rows = [{"bytes": Path(f).read_bytes(), "path": Path(f).name} for f in files]
    table = pa.table({"image": pa.array(rows, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])), "label": pa.array(list(range(len(files))), pa.int64())})
    pq.write_table(table, tmp_path / "hf.parquet", row_group_size=4)
    out = tmp_path / "ds"
    run_cli("prep", str(tmp_path / "hf.parquet"), "--out", str(out), "--workers", "0")
    size, resize = 20, 23
    with open_loader(str(out), batch_size=len(files), epochs=1, shuffle="none", transforms={"image": {"kind": "eval", "size": size, "resize": resize, "layout": "HWC"}}) as loader:
        batch = next(iter(loader))
        pixels = np.asarray(batch["image"]).astype(int)
        ids = list(batch.ids)
    for i, sid in enumerate(ids):
        im = Image.open(io.BytesIO(rows[sid]["bytes"])).convert("RGB")
        side = round(min(im.width, im.height) * size / resize)
        left, top = round((im.width - side) / 2), round((im.height - side) / 2)
        # crop, then resize: resize(box=...) would also sample pixels outside the box at its edges.
        ref = np.asarray(im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)).astype(int)
        assert np.abs(pixels[i] - ref).mean() < 1.5, f"sample {sid}"
