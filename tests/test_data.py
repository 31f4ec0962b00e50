"""Tests of failurelens.data: image decoding/preprocessing, manifests, ONNX checks, tokenizer."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageFile

from failurelens.data import errors as E
from failurelens.data.errors import ImageDecodeError, ValidationError, ViolationCollector
from failurelens.data.images import Preprocessing, decode_image, image_header, preprocess, read_image, sniff_format
from failurelens.data.manifest import (
    Manifest,
    check_images_exist,
    load_manifest,
    manifest_from_directory,
    validate_class_names,
    validate_manifest,
)
from failurelens.data.onnx_models import (
    inspect_onnx,
    run_onnx_inprocess,
    smoke_run,
    validate_classifier,
    validate_feature_extractor,
    validate_image_encoder,
    validate_text_encoder,
)
from failurelens.store.base import ObjectNotFoundError
from failurelens.store.local import LocalStore

REPO = Path(__file__).resolve().parents[1]


# ================================================================================================
# helpers
# ================================================================================================
@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.RandomState(seed).rand(h, w, 3) * 255).astype(np.uint8)


def smooth(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([np.sin(xx / 7) * 127 + 128, np.cos(yy / 5) * 127 + 128, (xx + yy) % 256], -1).astype(np.uint8)


def encode(arr_or_img, fmt: str, **kw) -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bilevel_png(width: int, height: int) -> bytes:
    """A real, complete 1-bit grayscale PNG, written row by row (never holds the raster)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


# ================================================================================================
# errors and packaging
# ================================================================================================
def test_data_package_imports_are_light():
    code = (
        "import sys, failurelens.data, failurelens.data.images, failurelens.data.manifest, "
        "failurelens.data.onnx_models, failurelens.data.tokenizer\n"
        "from failurelens.data import decode_image, validate_manifest\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'open_clip') if m in sys.modules)\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_violation_collector_caps_at_100_but_counts_all():
    c = ViolationCollector()
    for i in range(250):
        c.add("manifest.label", f"manifest row {i}: bad", row=i)
    err = c.error("the manifest has 250 problem(s)")
    assert isinstance(err, ValidationError)
    assert len(err.violations) == E.MAX_VIOLATIONS == 100
    assert err.violation_count == 250 and err.truncated
    assert err.violations[0].row == 0 and err.violations[-1].row == 99
    assert "manifest row 0: bad" in err.message and "and 245 more" in err.message
    assert str(err) == err.message


# ================================================================================================
# image decoding
# ================================================================================================
def test_png_roundtrip_is_lossless():
    arr = rgb(37, 53)
    img = decode_image(encode(arr, "PNG"))
    assert img.mode == "RGB" and img.size == (53, 37)
    np.testing.assert_array_equal(np.asarray(img), arr)


def test_jpeg_roundtrip():
    arr = smooth(40, 60)
    img = decode_image(encode(arr, "JPEG", quality=95))
    assert img.mode == "RGB" and img.size == (60, 40)
    assert np.abs(np.asarray(img).astype(int) - arr).mean() < 3


@pytest.mark.parametrize(
    "mode,make",
    [
        ("RGBA", lambda: Image.fromarray(np.dstack([rgb(8, 8), np.full((8, 8), 7, np.uint8)]), "RGBA")),
        ("L", lambda: Image.fromarray(rgb(8, 8)[..., 0], "L")),
        ("P", lambda: Image.fromarray(rgb(8, 8)).convert("P")),
        ("1", lambda: Image.fromarray(rgb(8, 8)[..., 0] > 128)),
    ],
)
def test_other_png_modes_become_rgb(mode, make):
    src = make()
    assert src.mode == mode
    img = decode_image(encode(src, "PNG"))
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), np.asarray(src.convert("RGB")))


def test_mpo_jpeg_from_cameras_is_accepted():
    # phones write multi-picture JPEGs, which Pillow reports as format "MPO"
    first, second = Image.fromarray(smooth(24, 32)), Image.fromarray(rgb(24, 32))
    data = encode(first, "MPO", save_all=True, append_images=[second], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    img = decode_image(data)
    assert img.size == (32, 24) and np.abs(np.asarray(img).astype(int) - smooth(24, 32)).mean() < 3


def test_16bit_grayscale_is_scaled_not_clipped():
    arr16 = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257  # 0..65535
    img = decode_image(encode(Image.fromarray(arr16), "PNG"))
    got = np.asarray(img)[..., 0]
    np.testing.assert_array_equal(got, (arr16 >> 8).astype(np.uint8))
    assert got.max() == 255 and got.min() == 0 and len(np.unique(got)) == 256  # Pillow's convert would clip


@pytest.mark.parametrize("data", [b"hello world, definitely not an image" * 3, bytes(range(256)) * 4])
def test_corrupt_bytes_are_not_an_image(data):
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data)
    assert ei.value.kind == "not_an_image"
    assert "not an image" in ei.value.reason and "PNG or JPEG" in ei.value.reason
    assert isinstance(ei.value, ValidationError) and ei.value.violations[0].field == "image"


def test_empty_bytes():
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(b"")
    assert ei.value.kind == "empty" and "0 bytes" in ei.value.reason


def test_png_with_corrupt_body():
    data = bytearray(encode(rgb(64, 64), "PNG"))
    mid = len(data) // 2
    data[mid : mid + 200] = bytes(200)  # zero a run inside IDAT: zlib/CRC must complain
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(bytes(data))
    assert ei.value.kind in ("corrupt", "truncated")
    assert "PNG" in ei.value.reason


def test_truncated_png():
    data = encode(rgb(100, 100), "PNG")
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data[: len(data) // 2])
    assert ei.value.kind == "truncated"
    assert "truncated" in ei.value.reason and "complete file" in ei.value.reason


def test_png_cut_just_before_its_end_is_truncated():
    # every pixel byte is there but the zlib checksum, the IDAT CRC and IEND are not:
    # Pillow alone would accept this, the IEND check must not
    data = encode(rgb(100, 100), "PNG")
    assert Image.open(io.BytesIO(data[:-20])).load() is not None
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data[:-20])
    assert ei.value.kind == "truncated" and "IEND" in ei.value.reason


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_jpeg(keep):
    data = encode(rgb(100, 100), "JPEG", quality=90)
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data[: int(len(data) * keep)])
    assert ei.value.kind == "truncated"
    assert "JPEG is truncated" in ei.value.reason


def test_truncated_header():
    data = encode(rgb(10, 10), "PNG")[:30]
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data)
    assert ei.value.kind in ("truncated", "corrupt")
    assert "PNG" in ei.value.reason


def test_zero_size_png():
    ihdr = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data)
    assert ei.value.kind == "empty" and "0x10" in ei.value.reason


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unsupported_formats_are_named(fmt):
    data = encode(rgb(16, 16), fmt)
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data)
    assert ei.value.kind == "unsupported_format"
    assert f"format {fmt} is not supported" in ei.value.reason
    assert "only PNG and JPEG" in ei.value.reason


def test_50_megapixel_png_is_refused_from_the_header(monkeypatch):
    data = bilevel_png(7072, 7072)
    assert len(data) < 100_000  # tiny file, 50 MP raster
    # it is a real PNG: Pillow reads its header and verifies every chunk CRC without decoding
    probe = Image.open(io.BytesIO(data))
    assert probe.size == (7072, 7072) and probe.format == "PNG"
    probe.verify()
    assert image_header(data) == ("PNG", 7072, 7072)

    def no_decode(self, *a, **k):  # decoding it would allocate 50-150 MB
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    t0 = time.perf_counter()
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data)
    assert time.perf_counter() - t0 < 1.0
    assert ei.value.kind == "too_large"
    assert "image is 7072x7072 = 50 MP; the limit is 40 MP; downscale it" in ei.value.reason


def test_same_generator_makes_decodable_pngs():
    img = decode_image(bilevel_png(64, 48))
    assert img.size == (64, 48) and np.asarray(img).max() == 0


def test_50_megapixel_png_peak_memory_stays_small(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(bilevel_png(7072, 7072))
    code = textwrap.dedent(
        f"""
        import resource, sys
        from failurelens.data.images import decode_image, ImageDecodeError
        data = open({str(path)!r}, "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode_image(data)
        except ImageDecodeError as e:
            assert e.kind == "too_large", e
        else:
            sys.exit("decoded!")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    grown_mb = int(out.stdout.strip().splitlines()[-1])
    assert grown_mb < 20, f"peak RSS grew by {grown_mb} MB"


def test_large_jpeg_header_is_refused_before_decoding(monkeypatch):
    data = bytearray(encode(rgb(16, 16), "JPEG"))
    # patch the SOF0 frame header to claim 7072x7072
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", 7072, 7072)
    assert image_header(bytes(data)) == ("JPEG", 7072, 7072)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(bytes(data))
    assert ei.value.kind == "too_large" and "7072x7072 = 50 MP" in ei.value.reason


def test_pillow_decompression_bomb_error_is_mapped():
    # 14000x14000 = 196 MP is over twice Pillow's own limit: Image.open raises DecompressionBombError
    data = bilevel_png(14000, 14000)
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data, max_pixels=10**9)
    assert ei.value.kind == "too_large" and "14000x14000" in ei.value.reason


def test_max_pixels_is_configurable():
    data = encode(rgb(100, 100), "PNG")
    with pytest.raises(ImageDecodeError) as ei:
        decode_image(data, max_pixels=5_000)
    assert "100x100" in ei.value.reason
    assert decode_image(data, max_pixels=10_000).size == (100, 100)


def test_sniff_format():
    assert sniff_format(encode(rgb(4, 4), "PNG")) == "PNG"
    assert sniff_format(encode(rgb(4, 4), "JPEG")) == "JPEG"
    assert sniff_format(encode(rgb(4, 4), "GIF")) == "GIF"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert sniff_format(b"plain text") is None


def test_read_image_from_store_names_the_uri(store):
    store.put_bytes("ds/good.png", encode(rgb(8, 8), "PNG"))
    store.put_bytes("ds/bad.png", b"not an image at all")
    assert read_image(store, "ds/good.png").size == (8, 8)
    with pytest.raises(ImageDecodeError) as ei:
        read_image(store, "ds/bad.png")
    assert ei.value.uri == store.uri("ds/bad.png")
    assert store.uri("ds/bad.png") in ei.value.message
    assert ei.value.violations[0].uri == store.uri("ds/bad.png")
    with pytest.raises(ImageDecodeError) as ei:
        read_image(store, "ds/good.png", max_bytes=10)
    assert ei.value.kind == "too_large"
    with pytest.raises(ObjectNotFoundError):
        read_image(store, "ds/missing.png")


# ================================================================================================
# preprocessing
# ================================================================================================
PREPROC_IMAGES = [(300, 200), (97, 131), (224, 224), (50, 400), (17, 23)]


def _test_images() -> list[Image.Image]:
    imgs = [Image.fromarray(rgb(h, w, seed=i)) for i, (h, w) in enumerate(PREPROC_IMAGES)]
    imgs.append(Image.fromarray(smooth(240, 320)))
    return imgs


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
def test_stretch_matches_torchvision(interp):
    import torch
    from torchvision import transforms as T

    imgs = _test_images()
    pp = Preprocessing(input_size=(64, 96), interpolation=interp)
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interp]
    ours = preprocess(imgs, pp)
    assert ours.shape == (len(imgs), 3, 64, 96) and ours.dtype == np.float32 and ours.flags.c_contiguous

    # the usual training pipeline: torchvision transforms on PIL images
    tf = T.Compose([T.Resize((64, 96), interpolation=mode, antialias=True), T.ToTensor(), T.Normalize(pp.mean, pp.std)])
    ref = np.stack([tf(im).numpy() for im in imgs])
    pil_diff = float(np.abs(ours - ref).max())
    assert pil_diff < 1e-5, pil_diff

    # torchvision's own tensor resize (uint8 tensor, antialias=True): close, not identical
    tft = T.Compose(
        [T.PILToTensor(), T.Resize((64, 96), interpolation=mode, antialias=True), T.ConvertImageDtype(torch.float32), T.Normalize(pp.mean, pp.std)]
    )
    ref_t = np.stack([tft(im).numpy() for im in imgs])
    tensor_diff = float(np.abs(ours - ref_t).max())
    print(f"\n[{interp}] max |ours - torchvision|: PIL path {pil_diff:.2e}, uint8-tensor path {tensor_diff:.2e}")
    if interp == "bilinear":
        assert tensor_diff < 2e-2  # at most one 8-bit level / std
    # bicubic: torch's tensor kernel (a=-0.75) is not Pillow's (a=-0.5); up to ~0.3 on noise, no bound asserted


@pytest.mark.parametrize("crop_pct,resize_to", [(0.875, 256), (1.0, 224)])
def test_shorter_side_center_crop_matches_torchvision(crop_pct, resize_to):
    from torchvision import transforms as T

    imgs = _test_images()
    pp = Preprocessing(input_size=(224, 224), resize="shorter_side_center_crop", crop_pct=crop_pct)
    ours = preprocess(imgs, pp)
    tf = T.Compose([T.Resize(resize_to), T.CenterCrop(224), T.ToTensor(), T.Normalize(pp.mean, pp.std)])
    ref = np.stack([tf(im).numpy() for im in imgs])
    assert float(np.abs(ours - ref).max()) < 1e-5


def test_non_square_center_crop_covers_the_target():
    img = Image.fromarray(smooth(100, 300))
    out = preprocess([img], Preprocessing(input_size=(64, 32), resize="shorter_side_center_crop"))
    assert out.shape == (1, 3, 64, 32)


def test_preprocess_is_deterministic_and_handles_modes():
    imgs = _test_images() + [Image.fromarray(rgb(30, 30)[..., 0], "L")]
    pp = Preprocessing(input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    a, b = preprocess(imgs, pp), preprocess(list(imgs), pp)
    assert np.array_equal(a, b)
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert preprocess([], pp).shape == (0, 3, 32, 32)
    last = a[-1]
    assert np.array_equal(last[0], last[1]) and np.array_equal(last[1], last[2])  # gray -> equal channels


def test_preprocessing_validation():
    with pytest.raises(ValidationError) as ei:
        Preprocessing(input_size=(0, 224), std=(0.2, 0.0, 0.2), resize="squash", interpolation="nearest", crop_pct=1.5)
    fields = {v.field for v in ei.value.violations}
    assert fields == {
        "preprocessing.input_size",
        "preprocessing.std",
        "preprocessing.resize",
        "preprocessing.interpolation",
        "preprocessing.crop_pct",
    }
    assert "'squash' is not one of ['stretch', 'shorter_side_center_crop']" in ei.value.message
    with pytest.raises(ValidationError, match="exactly 3 values"):
        Preprocessing(mean=(0.5, 0.5))
    pp = Preprocessing(input_size=[128, 160], mean=[0.1, 0.2, 0.3], std=[1, 1, 1], resize="shorter_side_center_crop")
    assert pp.input_size == (128, 160)
    assert Preprocessing.from_dict(json.loads(json.dumps(pp.to_dict()))) == pp
    with pytest.raises(ValidationError, match="unknown preprocessing fields"):
        Preprocessing.from_dict({"size": 3})


# ================================================================================================
# manifests
# ================================================================================================
CLASSES = ["cat", "dog", "bird"]


def _csv(text: str) -> pd.DataFrame:
    return load_manifest(textwrap.dedent(text).lstrip().encode(), "csv")


def test_valid_csv_manifest_with_names_and_extras():
    df = _csv(
        """
        uri,label,split,camera,score
        a.png,cat,train,nikon,0.5
        b.png,dog,train,canon,
        c.png,bird,val,nikon,1.5
        d.png,cat,test,,2
        """
    )
    m = validate_manifest(df, CLASSES)
    assert list(m.df.columns) == ["uri", "label", "split", "camera", "score"]
    assert m.df["label"].tolist() == [0, 1, 2, 0] and m.df["label"].dtype == np.int64
    assert m.extra_columns == ["camera", "score"]
    assert m.split_counts == {"test": 1, "train": 2, "val": 1}
    assert m.label_counts == [2, 1, 1]
    assert m.df["score"].dtype == np.float64 and np.isnan(m.df["score"][1])
    assert pd.isna(m.df["camera"][3])
    assert len(m) == 4 and m.num_classes == 3
    assert m.split_indices("train").tolist() == [0, 1]


def test_integer_labels_and_column_order_is_canonical():
    df = pd.DataFrame({"note": ["x", "y"], "split": ["train", "val"], "label": [2, 0], "uri": ["a.png", "b.jpg"]})
    m = validate_manifest(df, CLASSES)
    assert list(m.df.columns) == ["uri", "label", "split", "note"]
    assert m.labels.tolist() == [2, 0]


def test_missing_columns_lists_missing_and_found():
    df = _csv(
        """
        URI,label,set
        a.png,cat,train
        """
    )
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, CLASSES)
    msg = ei.value.message
    assert "missing required column(s) ['uri', 'split']" in msg
    assert "found columns ['URI', 'label', 'set']" in msg
    assert "'URI' must be spelled 'uri'" in msg


def test_unknown_label_name():
    df = _csv(
        """
        uri,label,split
        a.png,cat,train
        b.png,zebra,train
        c.png,Dog,val
        """
    )
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, CLASSES)
    err = ei.value
    assert err.violation_count == 2
    v = err.violations[0]
    assert v.field == "manifest.label" and v.row == 1 and v.uri == "b.png"
    assert "manifest row 1 (CSV line 3): label 'zebra' is not a class name nor a class index" in v.description
    assert "'cat', 'dog', 'bird'" in v.description
    assert "did you mean 'dog'" in err.violations[1].description
    assert "unknown labels: 'Dog' x1, 'zebra' x1" in err.message


def test_label_out_of_range():
    df = pd.DataFrame({"uri": ["a.png", "b.png", "c.png"], "label": [0, 12, -1], "split": ["train"] * 3})
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, [f"c{i}" for i in range(10)])
    descs = [v.description for v in ei.value.violations]
    assert descs[0] == "manifest row 1: label 12 is out of range; the class list has 10 classes (0..9)"
    assert descs[1] == "manifest row 2: label -1 is out of range; the class list has 10 classes (0..9)"


def test_non_integer_label():
    df = pd.DataFrame({"uri": ["a.png", "b.png"], "label": [1.0, 1.5], "split": ["train"] * 2})
    with pytest.raises(ValidationError, match=r"label 1.5 is not an integer class index"):
        validate_manifest(df, CLASSES)


def test_nan_uri_and_empty_split():
    df = _csv(
        """
        uri,label,split
        a.png,0,train
        ,1,train
        c.png,2,
        """
    )
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, CLASSES)
    vs = {(v.field, v.row) for v in ei.value.violations}
    assert vs == {("manifest.uri", 1), ("manifest.split", 2)}
    assert "manifest row 1 (CSV line 3): uri is empty" in ei.value.message

    df = pd.DataFrame({"uri": ["a.png", np.nan, None], "label": [0, 1, 2], "split": ["train"] * 3})
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, CLASSES)
    assert [v.row for v in ei.value.violations] == [1, 2]


def test_duplicate_uri():
    df = pd.DataFrame({"uri": ["a.png", "b.png", "a.png"], "label": [0, 1, 2], "split": ["train"] * 3})
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, CLASSES)
    (v,) = ei.value.violations
    assert v.row == 2 and v.uri == "a.png"
    assert "uri 'a.png' duplicates row 0; each image may appear once" in v.description


def test_bad_uris():
    df = pd.DataFrame({"uri": ["../x.png", "/abs.png", "http://e.com/a.png", "s3://b/k.png"], "label": [0] * 4, "split": ["t"] * 4})
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, CLASSES)
    assert [v.row for v in ei.value.violations] == [0, 1, 2]
    assert "scheme 'http'" in ei.value.violations[2].description


def test_class_name_na_is_not_a_missing_value():
    df = _csv(
        """
        uri,label,split,flag
        a.png,NA,train,NA
        b.png,None,val,ok
        """
    )
    m = validate_manifest(df, ["NA", "None"])
    assert m.labels.tolist() == [0, 1]
    assert pd.isna(m.df["flag"][0])  # extra columns keep pandas' NA parsing


def test_numeric_class_names():
    # all labels are class names -> names win even though they look like integers
    m = validate_manifest(pd.DataFrame({"uri": ["a", "b"], "label": ["10", "2"], "split": ["t", "t"]}), ["10", "2"])
    assert m.labels.tolist() == [0, 1]
    # mixed ('2' is no name): '1' names class 1 and is also index 1 (fine); '0' is class 2's name but index 0
    df = pd.DataFrame({"uri": ["a", "b", "c"], "label": ["1", "0", "2"], "split": ["t"] * 3})
    with pytest.raises(ValidationError, match="ambiguous"):
        validate_manifest(df, ["cat", "1", "0"])


def test_violations_are_capped_and_counted():
    n = 250
    df = pd.DataFrame({"uri": [f"{i}.png" for i in range(n)], "label": ["zebra"] * n, "split": ["train"] * n})
    with pytest.raises(ValidationError) as ei:
        validate_manifest(df, CLASSES)
    assert len(ei.value.violations) == 100 and ei.value.violation_count == 250
    assert "the manifest has 250 problem(s) (unknown labels: 'zebra' x250)" in ei.value.message


def test_class_names_validation():
    with pytest.raises(ValidationError, match="the class list is empty"):
        validate_class_names([])
    with pytest.raises(ValidationError, match="'cat' appears twice"):
        validate_class_names(["cat", "dog", "cat"])
    with pytest.raises(ValidationError, match="class names must be strings"):
        validate_class_names(["cat", 3])
    with pytest.raises(ValidationError, match="empty name"):
        validate_class_names(["cat", " "])
    with pytest.raises(ValidationError, match="list of strings"):
        validate_class_names("cat,dog")
    with pytest.raises(ValidationError, match="appears twice"):
        validate_manifest(pd.DataFrame({"uri": ["a"], "label": [0], "split": ["t"]}), ["a", "a"])


def test_empty_and_malformed_csv():
    with pytest.raises(ValidationError, match="no rows"):
        validate_manifest(load_manifest(b"uri,label,split\n"), CLASSES)
    with pytest.raises(ValidationError, match=r"more fields than its 3-column header \(CSV line\(s\) \[3\]\)"):
        load_manifest(b"uri,label,split\na.png,0,train\nb,png,0,train\n")
    with pytest.raises(ValidationError, match="0 bytes"):
        load_manifest(b"")
    with pytest.raises(ValidationError, match="not valid UTF-8"):
        load_manifest(b"uri,label,split\n\xff\xfe,0,train\n", "csv")
    with pytest.raises(ValidationError, match="repeats column"):
        load_manifest(b"uri,label,split,uri\na,0,t,b\n")


def test_parquet_manifest_roundtrip():
    df = pd.DataFrame({"uri": ["a.png", "b.png"], "label": ["dog", "bird"], "split": ["train", "val"], "w": [0.25, 0.75]})
    buf = io.BytesIO()
    df.to_parquet(buf)
    loaded = load_manifest(buf.getvalue())  # sniffed
    assert loaded.attrs["source_format"] == "parquet"
    m = validate_manifest(loaded, CLASSES)
    assert m.labels.tolist() == [1, 2] and m.extra_columns == ["w"]
    data = m.to_parquet_bytes()
    assert data[:4] == b"PAR1"
    m2 = Manifest.from_parquet_bytes(data)  # class names travel in the metadata
    assert m2.class_names == CLASSES
    pd.testing.assert_frame_equal(m2.df, m.df)


def test_parquet_manifest_errors():
    df = pd.DataFrame({"uri": ["a.png", None], "label": [0, 7], "split": ["train", "val"]})
    buf = io.BytesIO()
    df.to_parquet(buf)
    with pytest.raises(ValidationError) as ei:
        validate_manifest(load_manifest(buf.getvalue(), "parquet"), CLASSES)
    assert {(v.field, v.row) for v in ei.value.violations} == {("manifest.uri", 1), ("manifest.label", 1)}
    assert "manifest row 1: label 7 is out of range" in ei.value.message  # no CSV line numbers for Parquet
    with pytest.raises(ValidationError, match="not a readable Parquet file"):
        load_manifest(b"PAR1garbage")
    with pytest.raises(ValidationError, match="does not start with the Parquet magic"):
        load_manifest(b"uri,label,split\n", "parquet")


def test_manifest_from_imagefolder(tmp_path):
    png = encode(rgb(4, 4), "PNG")
    for split, cls, name in [
        ("train", "dog", "1.png"),
        ("train", "cat", "2.jpg"),
        ("val", "cat", "3.png"),
        ("val", "bird", "4.jpeg"),
    ]:
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / split / cls / name).write_bytes(png)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    (tmp_path / "train" / ".hidden").mkdir()
    df, names = manifest_from_directory(tmp_path)
    assert names == ["bird", "cat", "dog"]
    assert df["uri"].tolist() == ["train/cat/2.jpg", "train/dog/1.png", "val/bird/4.jpeg", "val/cat/3.png"]
    assert df["label"].tolist() == [1, 2, 0, 1]
    assert df["split"].tolist() == ["train", "train", "val", "val"]
    m = validate_manifest(df, names)
    assert m.split_counts == {"train": 2, "val": 2}


def test_manifest_from_directory_with_manifest_file(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(encode(rgb(4, 4), "PNG"))
    (tmp_path / "manifest.csv").write_text("uri,label,split,src\nimg/a.png,dog,train,web\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n\n")
    df, names = manifest_from_directory(tmp_path)
    assert names == ["cat", "dog"]
    assert validate_manifest(df, names).df.to_dict("records") == [{"uri": "img/a.png", "label": 1, "split": "train", "src": "web"}]
    (tmp_path / "manifest.csv").write_text("uri,label,split\nimg/a.png,dog,train\nimg/missing.png,cat,val\n")
    with pytest.raises(ValidationError, match="'img/missing.png' is not a file"):
        manifest_from_directory(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(ValidationError, match="no class list"):
        manifest_from_directory(tmp_path)


def test_manifest_from_directory_refuses_other_layouts(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.png").write_bytes(encode(rgb(4, 4), "PNG"))  # class/ without split/
    with pytest.raises(ValidationError, match="need a class folder"):
        manifest_from_directory(tmp_path)


def test_check_images_exist(store):
    m = validate_manifest(pd.DataFrame({"uri": ["a.png", "b.png", "sub/c.png"], "label": [0, 1, 2], "split": ["train"] * 3}), CLASSES)
    for k in ("ds1/a.png", "ds1/sub/c.png"):
        store.put_bytes(k, b"x")
    with pytest.raises(ValidationError) as ei:
        check_images_exist(m, store, "ds1")
    (v,) = ei.value.violations
    assert v.row == 1 and "'b.png' not found in the store (key 'ds1/b.png')" in v.description
    store.put_bytes("ds1/b.png", b"x")
    assert check_images_exist(m, store, "ds1/") == ["ds1/a.png", "ds1/b.png", "ds1/sub/c.png"]
    # full URIs of the store are accepted, URIs of another store are not
    m2 = validate_manifest(pd.DataFrame({"uri": [store.uri("ds1/a.png")], "label": [0], "split": ["t"]}), CLASSES)
    assert check_images_exist(m2, store) == ["ds1/a.png"]
    m3 = validate_manifest(pd.DataFrame({"uri": ["s3://elsewhere/a.png"], "label": [0], "split": ["t"]}), CLASSES)
    with pytest.raises(ValidationError, match="cannot be used with this store"):
        check_images_exist(m3, store)


# ================================================================================================
# ONNX models
# ================================================================================================


class TinyClassifier(torch.nn.Module):
    def __init__(self, in_ch=3, classes=10, dim=8, mode="ok"):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(in_ch, dim, 3, padding=1)
        self.fc = torch.nn.Linear(dim, classes)
        self.mode = mode

    def forward(self, x):
        f = torch.relu(self.conv(x)).mean((2, 3))
        if self.mode == "reshape_batch1":
            return self.fc(f.reshape(1, -1)), f  # hard-codes batch 1
        if self.mode == "mean_batch":
            return self.fc(f.mean(0, keepdim=True)), f  # silently collapses the batch
        logits = self.fc(f)
        if self.mode == "logits_only":
            return logits
        return logits, f


def export_legacy(model, example, input_names, output_names, dynamic=True) -> bytes:
    buf = io.BytesIO()
    dyn = {n: {0: "batch"} for n in [*input_names, *output_names]} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (example,),
            buf,
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dyn,
            opset_version=17,
        )
    return buf.getvalue()


@pytest.fixture(scope="module")
def classifier_bytes():
    return export_legacy(TinyClassifier(), torch.zeros(1, 3, 32, 32), ["images"], ["logits", "features"])


def test_inspect_valid_classifier(classifier_bytes):
    sig = inspect_onnx(classifier_bytes)
    assert [(t.name, t.dtype, t.shape) for t in sig.inputs] == [("images", "FP32", (-1, 3, 32, 32))]
    assert [(t.name, t.dtype, t.shape) for t in sig.outputs] == [
        ("logits", "FP32", (-1, 10)),
        ("features", "FP32", (-1, 8)),
    ]
    assert sig.opset == 17 and sig.ir_version >= 7
    info = validate_classifier(sig, num_classes=10, input_size=(32, 32))
    assert (info.input_name, info.input_hw, info.num_classes, info.feature_dim) == ("images", (32, 32), 10, 8)


def test_classifier_parity_and_smoke_run(classifier_bytes):
    sig = inspect_onnx(classifier_bytes)
    outs = smoke_run(classifier_bytes, sig)
    assert outs["logits"].shape == (2, 10) and outs["features"].shape == (2, 8)
    x = np.random.RandomState(0).randn(3, 3, 32, 32).astype(np.float32)
    got = run_onnx_inprocess(classifier_bytes, {"images": x})
    with torch.no_grad():
        ref_logits, ref_feat = TinyClassifier().eval()(torch.from_numpy(x))
    np.testing.assert_allclose(got["logits"], ref_logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["features"], ref_feat.numpy(), atol=1e-5)


def test_classifier_class_count_and_input_size_mismatch(classifier_bytes):
    sig = inspect_onnx(classifier_bytes)
    with pytest.raises(ValidationError) as ei:
        validate_classifier(sig, num_classes=12, input_size=(224, 224))
    msg = ei.value.message
    assert "'logits' output has 10 classes but the dataset has 12 classes" in msg
    assert "input 'images' is 32x32 (H x W) but preprocessing.input_size is (224, 224)" in msg
    assert ei.value.violation_count == 2


def test_classifier_without_features():
    data = export_legacy(TinyClassifier(mode="logits_only"), torch.zeros(1, 3, 32, 32), ["images"], ["logits"])
    with pytest.raises(ValidationError) as ei:
        validate_classifier(inspect_onnx(data), num_classes=10)
    msg = ei.value.message
    assert "the ONNX graph has outputs ['logits']; a classifier needs 'logits' [N, C] and 'features' [N, D]" in msg
    assert "(penultimate layer)" in msg and "output_names=['logits', 'features']" in msg


def test_classifier_with_unnamed_outputs():
    data = export_legacy(TinyClassifier(), torch.zeros(1, 3, 32, 32), ["x"], ["output", "out2"])
    with pytest.raises(ValidationError, match=r"has outputs \['output', 'out2'\]; a classifier needs"):
        validate_classifier(inspect_onnx(data))


def test_classifier_with_one_channel_input():
    data = export_legacy(TinyClassifier(in_ch=1), torch.zeros(1, 1, 32, 32), ["images"], ["logits", "features"])
    with pytest.raises(ValidationError) as ei:
        validate_classifier(inspect_onnx(data))
    assert "input 'images' has 1 channel(s) (shape [N, 1, 32, 32]); the input must take 3 (RGB) channels" in ei.value.message


def test_classifier_with_rank3_input():
    class Seq(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(3, 8, 3)
            self.fc = torch.nn.Linear(8, 10)

        def forward(self, x):
            f = self.conv(x).mean(2)
            return self.fc(f), f

    data = export_legacy(Seq(), torch.zeros(1, 3, 32), ["images"], ["logits", "features"])
    with pytest.raises(ValidationError) as ei:
        validate_classifier(inspect_onnx(data))
    assert "input 'images' has shape [N, 3, 32] (rank 3); a classifier input must be [N, 3, H, W]" in ei.value.message


def test_classifier_with_fixed_batch():
    data = export_legacy(TinyClassifier(), torch.zeros(1, 3, 32, 32), ["images"], ["logits", "features"], dynamic=False)
    sig = inspect_onnx(data)
    assert sig.inputs[0].shape == (1, 3, 32, 32)
    with pytest.raises(ValidationError) as ei:
        validate_classifier(sig)
    msg = ei.value.message
    assert "input 'images' has a fixed batch dimension of 1" in msg and "dynamic_axes" in msg
    assert "output 'logits' has a fixed batch dimension of 1" in msg


def test_smoke_run_catches_hardcoded_batch():
    data = export_legacy(TinyClassifier(mode="reshape_batch1"), torch.zeros(1, 3, 32, 32), ["images"], ["logits", "features"])
    sig = inspect_onnx(data)
    validate_classifier(sig)  # the declared signature looks fine
    with pytest.raises(ValidationError, match="fails in onnxruntime on a zero batch"):
        smoke_run(data, sig)

    data = export_legacy(TinyClassifier(mode="mean_batch"), torch.zeros(1, 3, 32, 32), ["images"], ["logits", "features"])
    sig = inspect_onnx(data)
    validate_classifier(sig)
    with pytest.raises(ValidationError, match="comes back with batch 1 for an input batch of 2"):
        smoke_run(data, sig)


def test_smoke_run_catches_wrong_static_dims(classifier_bytes):
    import onnx

    model = onnx.load_model_from_string(classifier_bytes)
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 11  # lies: the graph makes 10
    data = model.SerializeToString()
    sig = inspect_onnx(data)
    assert validate_classifier(sig).num_classes == 11
    with pytest.raises(ValidationError) as ei:
        smoke_run(data, sig)
    assert "output 'logits' is declared [N, 11] but the model returns [2, 10]" in ei.value.message


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"\x00garbage\xff" * 50, "not a valid ONNX model"),
        (b"", "the file is empty"),
        (encode(rgb(4, 4), "PNG"), "not a valid ONNX model"),
    ],
)
def test_garbage_bytes_are_not_onnx(data, needle):
    with pytest.raises(ValidationError) as ei:
        inspect_onnx(data)
    assert needle in ei.value.message and ei.value.violations[0].field == "model"


def test_model_with_external_weights_is_refused(classifier_bytes):
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load_model_from_string(classifier_bytes)
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    with pytest.raises(ValidationError) as ei:
        inspect_onnx(model.SerializeToString())
    assert "external data file ['weights.bin']" in ei.value.message and "external_data=False" in ei.value.message


def test_checker_failure_is_wrapped(classifier_bytes):
    import onnx

    model = onnx.load_model_from_string(classifier_bytes)
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ValidationError, match="not a valid ONNX model: the ONNX checker rejects it"):
        inspect_onnx(model.SerializeToString())


def test_dynamo_exporter_honours_output_names(capsys):
    buf = io.BytesIO()
    batch = torch.export.Dim("batch", min=1, max=1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TinyClassifier().eval(),
            (torch.zeros(2, 3, 32, 32),),
            buf,
            dynamo=True,
            input_names=["images"],
            output_names=["logits", "features"],
            dynamic_shapes={"x": {0: batch}},
            external_data=False,
            verbose=False,
        )
    data = buf.getvalue()
    sig = inspect_onnx(data)
    assert sig.input_names == ["images"] and sig.output_names == ["logits", "features"]
    info = validate_classifier(sig, num_classes=10)
    assert info.input_hw == (32, 32)
    outs = smoke_run(data, sig, batch_size=3)
    assert outs["logits"].shape == (3, 10)


def test_image_encoder_and_feature_extractor():
    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)

        def forward(self, x):
            fmap = self.conv(x)
            f = fmap.mean((2, 3))
            return f / f.norm(dim=1, keepdim=True).clamp_min(1e-6), fmap

    ex = torch.zeros(1, 3, 16, 16)
    data = export_legacy(Enc(), ex, ["pixel_values"], ["embeddings", "fmap_unused"])
    info = validate_image_encoder(inspect_onnx(data))
    assert (info.input_name, info.input_hw, info.embedding_dim) == ("pixel_values", (16, 16), 6)
    with pytest.raises(ValidationError, match="a feature extractor needs 'features' \\[N, D\\]"):
        validate_feature_extractor(inspect_onnx(data))

    data = export_legacy(Enc(), ex, ["images"], ["features", "feature_map"])
    sig = inspect_onnx(data)
    fi = validate_feature_extractor(sig)
    assert fi.feature_dim == 6 and fi.feature_map_shape == (6, 8, 8)
    assert smoke_run(data, sig)["feature_map"].shape == (2, 6, 8, 8)
    with pytest.raises(ValidationError, match="needs 'embeddings'"):
        validate_image_encoder(sig)


class TinyText(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(49408, 4)

    def forward(self, input_ids):
        return self.emb(input_ids).mean(1)


def test_text_encoder():
    data = export_legacy(TinyText(), torch.zeros(1, 77, dtype=torch.long), ["input_ids"], ["embeddings"])
    sig = inspect_onnx(data)
    assert sig.inputs[0].dtype == "INT64" and sig.inputs[0].shape == (-1, 77)
    info = validate_text_encoder(sig)
    assert info.context_length == 77 and info.embedding_dim == 4
    assert smoke_run(data, sig)["embeddings"].shape == (2, 4)

    bad = export_legacy(TinyText(), torch.zeros(1, 77, dtype=torch.int32), ["tokens"], ["emb"])
    with pytest.raises(ValidationError) as ei:
        validate_text_encoder(inspect_onnx(bad))
    msg = ei.value.message
    assert "input is named 'tokens'; name it 'input_ids'" in msg
    assert "has dtype INT32; token ids must be INT64" in msg
    assert "needs 'embeddings' [N, D]" in msg


# ================================================================================================
# tokenizer
# ================================================================================================
@pytest.fixture(scope="module")
def clip_tokenizer():
    from failurelens.data.tokenizer import ClipTokenizer

    return ClipTokenizer()


def test_tokenizer_shape_dtype_and_determinism(clip_tokenizer):
    texts = ["a photo of a cat", "A PHOTO OF A CAT", "", "word " * 200]
    ids = clip_tokenizer.encode(texts)
    assert ids.shape == (4, 77) and ids.dtype == np.int64 and ids.flags.c_contiguous
    assert np.array_equal(ids, clip_tokenizer.encode(texts))
    sot, eot = clip_tokenizer.sot_token_id, clip_tokenizer.eot_token_id
    assert (sot, eot) == (49406, 49407)
    assert np.array_equal(ids[0], ids[1])  # lower-cased
    assert ids[2, 0] == sot and ids[2, 1] == eot and not ids[2, 2:].any()
    assert ids[3, 0] == sot and ids[3, -1] == eot and (ids[3] != 0).all()  # truncated, ends with <end>
    assert (ids[0].argmax()) == int(np.count_nonzero(ids[0])) - 1  # CLIP pools at the arg-max (<end>)
    assert clip_tokenizer.decode(ids[0]) == "a photo of a cat"
    assert clip_tokenizer.encode([]).shape == (0, 77)
    from open_clip.tokenizer import SimpleTokenizer

    np.testing.assert_array_equal(ids, SimpleTokenizer()(texts).numpy())
    with pytest.raises(TypeError):
        clip_tokenizer.encode("a single string")


def test_tokenizer_context_length():
    from failurelens.data.tokenizer import ClipTokenizer

    ids = ClipTokenizer(context_length=8).encode(["one two three four five six seven eight nine"])
    assert ids.shape == (1, 8) and ids[0, -1] == 49407
    with pytest.raises(ValidationError):
        ClipTokenizer(context_length=1)


def test_tokenizer_needs_no_network():
    code = textwrap.dedent(
        """
        import os, socket
        attempts = []
        def refuse(*a, **k):
            attempts.append(a[1:] if a else k)
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from failurelens.data.tokenizer import ClipTokenizer
        import open_clip
        tok = ClipTokenizer()
        assert tok.bpe_path.startswith(os.path.dirname(open_clip.__file__)), tok.bpe_path
        ids = tok.encode(["a photo of a dog"])
        assert ids.shape == (1, 77)
        print("attempts", len(attempts))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "attempts 0"
