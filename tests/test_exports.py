"""failurelens.models.export: real architectures (random init, nothing downloaded) exported to the
registry's ONNX contract, checked three ways: PyTorch vs onnxruntime (< 1e-4), the registry's
validators (inspect_onnx + validate_*), and the real bundled tritonserver serving the file with
the same numbers as onnxruntime (< 1e-4, batch of 2).

Models: robust ResNet-50 from a fake MadryLab robustness checkpoint (+ a plain torchvision state
dict with the normaliser baked in), open_clip ViT-B-32 (image + text) and a tiny custom open_clip
config with a checkpoint, torchvision resnet18, torchvision mobilenet_v3_small from a checkpoint,
timm convnext_atto. The exported files (90-340 MB each) live in one module temp dir, deleted at
the end of the module.
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from failurelens.cli.export import add_export_commands
from failurelens.data.onnx_models import (
    inspect_onnx,
    smoke_run,
    validate_classifier,
    validate_feature_extractor,
    validate_image_encoder,
    validate_text_encoder,
)
from failurelens.data.tokenizer import ClipTokenizer
from failurelens.models import export as E
from failurelens.triton.repository import remove_model, spec_from_onnx, write_model

try:  # the lead's conftest may also register these; the server instance is shared either way
    from tests._fixtures.triton import triton_client, triton_repo, triton_server
except ImportError:  # pragma: no cover - tests/ not importable as a package
    from _fixtures.triton import triton_client, triton_repo, triton_server  # noqa: F401

TOL = 1e-4
TEXTS = ["a photo of a cat", "a blurry photo of a small red car on a wet road at night", ""]


# ---------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("exports")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _seeded_model(fn, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn().eval()


def _images(n: int, hw: tuple[int, int], seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, *hw)).astype(np.float32)


def _ort(path: Path, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    try:
        return dict(zip(names, sess.run(names, feeds)))
    finally:
        del sess


def _maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _signature(path: Path):
    return inspect_onnx(path.read_bytes())


def _check_result(res: E.ExportResult) -> None:
    assert res.max_abs_diff < TOL and all(v < TOL for v in res.diffs.values()), res.diffs
    # a parity figure only means something when the outputs are not ~0
    assert all(m > 1e-2 for m in res.magnitudes.values()), res.magnitudes
    for path in res.paths.values():
        model = onnx.load(str(path), load_external_data=False)
        assert not any(len(i.external_data) for i in model.graph.initializer)
        assert any(imp.domain in ("", "ai.onnx") and imp.version == E.OPSET for imp in model.opset_import)
        md = {p.key: p.value for p in model.metadata_props}
        assert md["failurelens.kind"] == res.kind
        assert not list(path.parent.glob(f".{path.name}.*.tmp"))
    res.preprocessing_obj()  # a valid Preprocessing
    print(f"\n{res.summary()}")


def _serve(triton_repo: Path, triton_client, name: str, path: Path, feeds: dict[str, np.ndarray], names: list[str]):
    """Serve ``path`` from Triton, infer ``feeds`` and compare with onnxruntime; returns the diffs."""
    ref = _ort(path, feeds, names)
    write_model(triton_repo, spec_from_onnx(name, str(path), max_batch_size=8), str(path))
    t0 = time.monotonic()
    try:
        triton_client.load_model(name, timeout_s=300)
        t_load = time.monotonic() - t0
        got = triton_client.infer(name, feeds, names, timeout_s=120)
    finally:
        try:
            triton_client.unload_model(name, timeout_s=120)
        finally:
            remove_model(triton_repo, name)
    diffs = {n: _maxdiff(got[n], ref[n]) for n in names}
    print(f"\ntriton {name}: load {t_load:.1f}s, triton vs onnxruntime {diffs}")
    assert all(d < TOL for d in diffs.values()), diffs
    return diffs


# ---------------------------------------------------------------------- robust ResNet-50
ROBUST_MEAN = (0.4, 0.45, 0.5)
ROBUST_STD = (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def robust_export(out_dir: Path) -> tuple[Path, E.ExportResult]:
    ckpt = E.make_robustness_checkpoint(out_dir / "robust.ckpt", seed=0, mean=ROBUST_MEAN, std=ROBUST_STD)
    raw = torch.load(str(ckpt), map_location="cpu", weights_only=True)
    keys = set(raw["model"])
    assert raw["epoch"] == 90
    assert "module.model.conv1.weight" in keys and "module.attacker.model.layer4.2.bn3.running_var" in keys
    assert raw["model"]["module.normalizer.new_mean"].shape == (3, 1, 1)
    res = E.export_robust_resnet50(ckpt, out_dir / "robust.onnx")
    return ckpt, res


@pytest.mark.triton
@pytest.mark.slow
def test_robust_resnet50_from_robustness_checkpoint(robust_export, triton_repo, triton_client):
    ckpt, res = robust_export
    _check_result(res)
    assert res.kind == "feature_extractor"
    assert res.outputs["model"] == {"features": (-1, 2048), "feature_map": (-1, 2048, 7, 7)}
    assert res.dims["feature_dim"] == 2048 and res.dims["feature_map_shape"] == (2048, 7, 7)
    # the normaliser is NOT baked: the checkpoint's mean/std are what to declare
    pp = res.preprocessing
    assert tuple(pp["mean"]) == ROBUST_MEAN and tuple(pp["std"]) == ROBUST_STD
    assert pp["input_size"] == [224, 224] and pp["resize"] == "shorter_side_center_crop" and pp["crop_pct"] == 0.875
    assert "--mean 0.4 0.45 0.5" in res.register_command("r") and "--kind feature_extractor" in res.register_command("r")

    data = res.path.read_bytes()
    sig = inspect_onnx(data)
    info = validate_feature_extractor(sig, input_size=(224, 224))
    assert info.feature_dim == 2048 and info.feature_map_shape == (2048, 7, 7) and info.input_name == "images"
    smoke_run(data, sig)

    # the weights are the checkpoint's classifier copy; features = global average pool of feature_map
    model, mean, std, meta = E.load_robust_resnet50(ckpt)
    assert meta["format"] == "robustness" and meta["num_classes"] == 1000 and (mean, std) == (ROBUST_MEAN, ROBUST_STD)
    x = _images(2, (224, 224))
    out = _ort(res.path, {"images": x}, ["features", "feature_map"])
    with torch.no_grad():
        fmap_t = torch.nn.Sequential(*list(model.children())[:-2])(torch.from_numpy(x)).numpy()
    assert _maxdiff(out["feature_map"], fmap_t) < TOL
    assert _maxdiff(out["features"], out["feature_map"].mean(axis=(2, 3))) < 1e-5

    _serve(triton_repo, triton_client, "export_robust_resnet50", res.path, {"images": x}, ["features", "feature_map"])


@pytest.mark.slow
def test_robust_resnet50_plain_state_dict_with_baked_normalizer(robust_export, out_dir: Path):
    ckpt, res = robust_export
    raw = torch.load(str(ckpt), map_location="cpu", weights_only=True)["model"]
    plain = {"state_dict": {"module." + k[len("module.model.") :]: v for k, v in raw.items() if k.startswith("module.model.")}}
    torch.save(plain, str(out_dir / "plain.pth"))
    baked = E.export_robust_resnet50(out_dir / "plain.pth", out_dir / "robust_baked.onnx", bake_normalizer=True)
    _check_result(baked)
    # a plain state dict carries no normaliser: ImageNet's is baked; declare mean 0 / std 1
    assert tuple(baked.preprocessing["mean"]) == (0.0, 0.0, 0.0) and tuple(baked.preprocessing["std"]) == (1.0, 1.0, 1.0)
    assert baked.metadata["failurelens.normalizer_baked"] == "true"
    validate_feature_extractor(_signature(baked.path), input_size=(224, 224))
    # baked graph on [0, 1] pixels == unbaked graph (same weights) on ImageNet-normalised pixels
    pixels = np.random.default_rng(3).random((2, 3, 224, 224), dtype=np.float32)
    mean = np.array(E.IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.array(E.IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    a = _ort(baked.path, {"images": pixels}, ["features", "feature_map"])
    b = _ort(res.path, {"images": (pixels - mean) / std}, ["features", "feature_map"])
    assert _maxdiff(a["features"], b["features"]) < TOL and _maxdiff(a["feature_map"], b["feature_map"]) < TOL
    (out_dir / "plain.pth").unlink()
    baked.path.unlink()


# ---------------------------------------------------------------------- open_clip
@pytest.fixture(scope="module")
def clip_export(out_dir: Path) -> E.ExportResult:
    return E.export_open_clip("ViT-B-32", None, out_dir / "clip")


@pytest.mark.triton
@pytest.mark.slow
def test_open_clip_vit_b_32(clip_export, triton_repo, triton_client):
    import open_clip

    res = clip_export
    _check_result(res)
    assert res.kind == "image_text" and set(res.paths) == {"image", "text"}
    assert res.outputs == {"image": {"embeddings": (-1, 512)}, "text": {"embeddings": (-1, 512)}}
    assert res.dims["context_length"] == 77 and res.dims["embedding_dim"] == 512
    pp = res.preprocessing
    assert tuple(pp["mean"]) == E.OPENAI_CLIP_MEAN and pp["interpolation"] == "bicubic" and pp["crop_pct"] == 1.0

    ie = validate_image_encoder(_signature(res.paths["image"]), input_size=(224, 224))
    te = validate_text_encoder(_signature(res.paths["text"]))
    assert ie.embedding_dim == te.embedding_dim == 512 and te.context_length == 77

    # the same random init in PyTorch; real tokenizer output (EOT = arg-max id) through the graph
    model = _seeded_model(lambda: open_clip.create_model("ViT-B-32", pretrained=None, pretrained_text=False))
    ids = ClipTokenizer(77).encode(TEXTS)
    x = _images(2, (224, 224))
    with torch.no_grad():
        text_t = model.encode_text(torch.from_numpy(ids)).numpy()
        image_t = model.encode_image(torch.from_numpy(x)).numpy()
    text_o = _ort(res.paths["text"], {"input_ids": ids}, ["embeddings"])["embeddings"]
    image_o = _ort(res.paths["image"], {"images": x}, ["embeddings"])["embeddings"]
    assert _maxdiff(text_o, text_t) < TOL and _maxdiff(image_o, image_t) < TOL
    # NOT normalised in the graph; logit_scale (exponentiated) in the metadata of both files
    assert not np.allclose(np.linalg.norm(text_o, axis=1), 1.0, atol=1e-3)
    scale = float(model.logit_scale.detach().exp())
    for path in res.paths.values():
        md = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        assert math.isclose(float(md["logit_scale"]), scale, rel_tol=1e-6)
        assert md["embeddings_normalized"] == "false" and md["context_length"] == "77"
    assert math.isclose(res.dims["logit_scale"], scale, rel_tol=1e-6)
    del model

    _serve(triton_repo, triton_client, "export_clip_text", res.paths["text"], {"input_ids": ids[:2]}, ["embeddings"])
    _serve(triton_repo, triton_client, "export_clip_image", res.paths["image"], {"images": x}, ["embeddings"])


TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def test_open_clip_custom_config_and_checkpoint(out_dir: Path):
    from open_clip.model import CLIP

    model = _seeded_model(lambda: CLIP(**TINY_CLIP), seed=123)  # not the exporter's seed: weights must come from the file
    with torch.no_grad():
        model.logit_scale.fill_(math.log(50.0))
    ckpt = out_dir / "tiny_clip.pt"
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, str(ckpt))
    res = E.export_open_clip("tiny-clip", ckpt, out_dir / "tiny_clip", model_config=TINY_CLIP)
    _check_result(res)
    assert res.preprocessing["input_size"] == [32, 32] and res.dims["embedding_dim"] == 32
    assert math.isclose(res.dims["logit_scale"], 50.0, rel_tol=1e-5) and math.isclose(float(res.metadata["logit_scale"]), 50.0, rel_tol=1e-5)
    validate_image_encoder(_signature(res.paths["image"]), input_size=(32, 32))
    assert validate_text_encoder(_signature(res.paths["text"])).context_length == 77
    ids = ClipTokenizer(77).encode(TEXTS)
    x = _images(3, (32, 32))
    with torch.no_grad():
        assert (
            _maxdiff(_ort(res.paths["text"], {"input_ids": ids}, ["embeddings"])["embeddings"], model.encode_text(torch.from_numpy(ids)).numpy())
            < TOL
        )
        assert _maxdiff(_ort(res.paths["image"], {"images": x}, ["embeddings"])["embeddings"], model.encode_image(torch.from_numpy(x)).numpy()) < TOL
    # open_clip's global config registry is left alone
    import open_clip

    assert "tiny-clip" not in open_clip.list_models()


# ---------------------------------------------------------------------- classifiers
@pytest.mark.triton
@pytest.mark.slow
def test_classifier_torchvision_resnet18(out_dir: Path, triton_repo, triton_client):
    import torchvision

    res = E.export_classifier("torchvision:resnet18", num_classes=10, out_path=out_dir / "resnet18.onnx", input_size=(224, 224))
    _check_result(res)
    assert res.outputs["model"] == {"logits": (-1, 10), "features": (-1, 512)}
    assert res.dims["family"] == "torchvision"
    pp = res.preprocessing  # torchvision's ResNet eval transform: resize 256, crop 224, bilinear
    assert pp["crop_pct"] == 224 / 256 and pp["interpolation"] == "bilinear" and tuple(pp["mean"]) == E.IMAGENET_MEAN
    info = validate_classifier(_signature(res.path), num_classes=10, input_size=(224, 224))
    assert info.feature_dim == 512 and info.num_classes == 10

    # features = avgpool output flattened (the input of fc): logits == fc(features)
    model = _seeded_model(lambda: torchvision.models.resnet18(weights=None, num_classes=10))
    x = _images(2, (224, 224))
    out = _ort(res.path, {"images": x}, ["logits", "features"])
    with torch.no_grad():
        assert _maxdiff(out["logits"], model(torch.from_numpy(x)).numpy()) < TOL
        assert _maxdiff(out["logits"], model.fc(torch.from_numpy(out["features"])).numpy()) < TOL
    _serve(triton_repo, triton_client, "export_resnet18", res.path, {"images": x}, ["logits", "features"])
    res.path.unlink()


@pytest.fixture(scope="module")
def mobilenet_checkpoint(out_dir: Path) -> tuple[Path, torch.nn.Module]:
    import torchvision

    model = _seeded_model(lambda: torchvision.models.mobilenet_v3_small(weights=None, num_classes=7), seed=11)
    E._calibrate_batchnorm(model, (224, 224), seed=11)  # random init + identity BN stats gives ~1e-15 outputs
    model.eval()
    path = out_dir / "mobilenet.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 1}, str(path))
    return path, model


@pytest.mark.triton
@pytest.mark.slow
def test_classifier_torchvision_mobilenet_from_checkpoint(mobilenet_checkpoint, out_dir: Path, triton_repo, triton_client):
    ckpt, model = mobilenet_checkpoint
    res = E.export_classifier("torchvision:mobilenet_v3_small", checkpoint_path=ckpt, out_path=out_dir / "mobilenet.onnx")
    _check_result(res)
    # the class count comes from the checkpoint's head; features = the 1024-d input of classifier[3]
    assert res.outputs["model"] == {"logits": (-1, 7), "features": (-1, 1024)}
    validate_classifier(_signature(res.path), num_classes=7, input_size=(224, 224))
    x = _images(2, (224, 224))
    seen = {}
    hook = model.classifier[3].register_forward_pre_hook(lambda m, a: seen.update(f=a[0].detach().clone()))
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(x)).numpy()
    finally:
        hook.remove()
    out = _ort(res.path, {"images": x}, ["logits", "features"])
    assert _maxdiff(out["logits"], logits) < TOL and _maxdiff(out["features"], seen["f"].numpy()) < TOL
    _serve(triton_repo, triton_client, "export_mobilenet", res.path, {"images": x}, ["logits", "features"])


def test_cli_classifier_export_is_deterministic(mobilenet_checkpoint, out_dir: Path, capsys):
    """The CLI prints the preprocessing and parity; the same weights give byte-identical files."""
    ckpt, _ = mobilenet_checkpoint
    ap = argparse.ArgumentParser()
    add_export_commands(ap.add_subparsers(dest="sub", required=True))
    a, b = out_dir / "cli_a.onnx", out_dir / "cli_b.onnx"
    for out in (a, b):
        ns = ap.parse_args(
            ["export", "classifier", "torchvision:mobilenet_v3_small", "--checkpoint", str(ckpt), "--out", str(out), "--input-size", "128", "128"]
        )
        assert ns.fn(ns) == 0
    text = capsys.readouterr().out
    assert "preprocessing to declare: input_size 128x128" in text and "parity torch vs onnxruntime" in text
    assert "failurelens model register" in text and "--kind classifier" in text and "--resize center_crop" in text
    assert a.read_bytes() == b.read_bytes()
    validate_classifier(_signature(a), num_classes=7, input_size=(128, 128))
    # errors are reported, not raised
    ns = ap.parse_args(["export", "classifier", "torchvision:no_such_net", "--out", str(out_dir / "x.onnx")])
    assert ns.fn(ns) == 1 and "unknown torchvision model" in capsys.readouterr().err
    ns = ap.parse_args(["export", "open-clip", "--model", "ViT-B-32", "--checkpoint", "openai", "--out-dir", str(out_dir)])
    assert ns.fn(ns) == 1 and "not a file" in capsys.readouterr().err
    a.unlink()
    b.unlink()


@pytest.mark.triton
@pytest.mark.slow
def test_classifier_timm_convnext_atto(out_dir: Path, triton_repo, triton_client):
    import timm

    res = E.export_classifier("timm:convnext_atto", num_classes=5, out_path=out_dir / "convnext_atto.onnx")
    _check_result(res)
    assert res.outputs["model"] == {"logits": (-1, 5), "features": (-1, 320)} and res.dims["family"] == "timm"
    assert res.preprocessing["interpolation"] == "bicubic" and res.preprocessing["crop_pct"] == 0.875  # timm's data config
    validate_classifier(_signature(res.path), num_classes=5, input_size=(224, 224))
    # features = timm's pre-logits (pooled + LayerNorm), logits = head.fc(features)
    model = _seeded_model(lambda: timm.create_model("convnext_atto", pretrained=False, num_classes=5))
    x = _images(2, (224, 224))
    with torch.no_grad():
        t = torch.from_numpy(x)
        feats = model.forward_head(model.forward_features(t), pre_logits=True).numpy()
        logits = model(t).numpy()
    out = _ort(res.path, {"images": x}, ["logits", "features"])
    assert _maxdiff(out["logits"], logits) < TOL and _maxdiff(out["features"], feats) < TOL
    _serve(triton_repo, triton_client, "export_convnext_atto", res.path, {"images": x}, ["logits", "features"])
    res.path.unlink()


@pytest.mark.slow
def test_classifier_timm_vit_fixes_symbolic_feature_dim(out_dir: Path):
    """ViTs come out of the TorchScript exporter as features [N, ?]; the export declares [N, 192]."""
    res = E.export_classifier("timm:vit_tiny_patch16_224", num_classes=3, out_path=out_dir / "vit_tiny.onnx")
    _check_result(res)
    assert res.outputs["model"] == {"logits": (-1, 3), "features": (-1, 192)}
    data = res.path.read_bytes()
    sig = inspect_onnx(data)
    assert validate_classifier(sig, num_classes=3, input_size=(224, 224)).feature_dim == 192
    assert smoke_run(data, sig)["features"].shape == (2, 192)  # the declared dims are the real ones
    res.path.unlink()


# ---------------------------------------------------------------------- small models, errors
class _TupleNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu(self.conv(x)).mean((2, 3))
        return self.fc(f), f


class _LogitsNet(_TupleNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]


class _BatchBakedNet(_TupleNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        f = torch.relu(self.conv(x)).mean((2, 3)) * int(x.shape[0])  # traced as a constant: wrong for other batches
        return self.fc(f)


class _ConvHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3))


def test_module_classifiers_and_errors(out_dir: Path):
    net = _seeded_model(_TupleNet)
    res = E.export_classifier(net, out_path=out_dir / "tuple.onnx", input_size=(32, 32))
    assert res.dims == {"num_classes": 4, "feature_dim": 8, "family": "tuple"} and res.max_abs_diff < TOL
    validate_classifier(_signature(res.path), input_size=(32, 32))
    # an nn.Module returning logits: features are tapped at the final Linear's input; the module is restored
    plain = _seeded_model(_LogitsNet)
    res = E.export_classifier(plain, out_path=out_dir / "tap.onnx", input_size=(32, 32))
    assert res.dims["family"] == "module" and res.dims["feature_dim"] == 8 and isinstance(plain.fc, torch.nn.Linear)

    # a graph that hard-codes the batch fails parity (checked on batch 3, traced on 2); nothing written
    with pytest.raises(E.ParityError, match="parity failed"):
        E.export_classifier(_seeded_model(_BatchBakedNet), out_path=out_dir / "bad.onnx", input_size=(32, 32))
    assert not (out_dir / "bad.onnx").exists()

    class _AfterHead(_TupleNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return super().forward(x)[0] * 2  # something after the final Linear: not a plain head

    with pytest.raises(E.ExportError, match="not the last operation"):
        E.export_classifier(_seeded_model(_AfterHead), out_path=out_dir / "bad.onnx", input_size=(32, 32))
    with pytest.raises(E.ExportError, match="no nn.Linear head"):
        E.export_classifier(_seeded_model(_ConvHead), out_path=out_dir / "bad.onnx", input_size=(32, 32))

    # checkpoints: pickled objects are refused (weights_only); wrong architectures are named
    bad = out_dir / "pickled.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, str(bad))
    with pytest.raises(E.ExportError, match="weights_only"):
        E.load_checkpoint_file(bad)
    torch.save({"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, str(bad))
    with pytest.raises(E.ExportError, match="does not fit"):
        E.export_robust_resnet50(bad, out_dir / "bad.onnx")
    with pytest.raises(FileNotFoundError):
        E.export_robust_resnet50(out_dir / "missing.ckpt", out_dir / "bad.onnx")
    # open_clip: no downloads (tags, hf-hub), CLIP-BPE text towers only
    with pytest.raises(FileNotFoundError, match="not a file"):
        E.export_open_clip("ViT-B-32", "openai", out_dir / "c")
    with pytest.raises(E.ExportError, match="downloaded"):
        E.export_open_clip("hf-hub:org/model", None, out_dir / "c")
    small_vocab = {**TINY_CLIP, "text_cfg": {**TINY_CLIP["text_cfg"], "vocab_size": 1000}}
    with pytest.raises(E.ExportError, match="vocab_size"):
        E.export_open_clip("tiny", None, out_dir / "c", model_config=small_vocab)
    assert not (out_dir / "c").exists()


@pytest.mark.triton
@pytest.mark.slow
def test_full_size_exports_through_registry_and_embedding_service(robust_export, clip_export, out_dir: Path, tmp_path: Path):
    """The user's path end to end: the full-size robust ResNet-50 and ViT-B-32 exports registered
    through the Registry (validated, smoke-run, placed into Triton; the extractor also gets its
    feature-attack model), images embedded by the Embedding service, texts by EmbedTexts - the
    same numbers as onnxruntime in-process on the same preprocessed images."""
    from failurelens.clients import FailureLensClient, upload_dataset, upload_file
    from failurelens.convert import preprocessing_to_proto
    from failurelens.data.images import Preprocessing, preprocess, read_image
    from failurelens.stack import Stack
    from failurelens.store import open_store
    from failurelens.v1 import registry_pb2
    from tests._fixtures.shapes import write_dataset

    _, robust = robust_export
    data = write_dataset(tmp_path / "shapes", {"test": 1})  # 4 images, one per class
    with Stack(tmp_path / "state") as stack:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        uri, names = upload_dataset(st, data, "uploads/shapes/")
        ds = client.register_dataset(name="shapes", manifest_uri=uri, class_names=names)
        manifest = st.get_parquet(st.key_from_uri(ds.manifest.uri)).to_pandas()
        images = [read_image(st, st.key_from_uri(u)) for u in manifest["uri"]]

        pp_r = Preprocessing.from_dict(robust.preprocessing)
        m = client.register_model(
            name="robust-r50",
            kind=registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR,
            max_batch_size=4,
            onnx_uri=upload_file(st, robust.path, "uploads/models/robust-r50.onnx"),
            preprocessing=preprocessing_to_proto(pp_r),
        )
        assert m.has_feature_map and m.triton_models[-1] == "robust-r50__attack"
        e = client.embed(dataset_id="shapes", model_id="robust-r50", include_feature_map=True, batch_size=4)
        ref = _ort(robust.path, {"images": preprocess(images, pp_r)}, ["features", "feature_map"])
        got_f, got_m = (st.get_npy(st.key_from_uri(getattr(e, f).uri)) for f in ("features", "feature_map"))
        assert got_f.shape == (4, 2048) and got_m.shape == (4, 2048, 7, 7)
        assert _maxdiff(got_f, ref["features"]) < TOL and _maxdiff(got_m, ref["feature_map"]) < TOL

        pp_c = Preprocessing.from_dict(clip_export.preprocessing)
        client.register_model(
            name="clip-b32",
            kind=registry_pb2.MODEL_KIND_IMAGE_TEXT,
            max_batch_size=4,
            onnx_uri=upload_file(st, clip_export.paths["image"], "uploads/models/clip-b32/image.onnx"),
            text_onnx_uri=upload_file(st, clip_export.paths["text"], "uploads/models/clip-b32/text.onnx"),
            tokenizer=registry_pb2.Tokenizer(kind="clip_bpe", context_length=77),
            preprocessing=preprocessing_to_proto(pp_c),
        )
        ec = client.embed(dataset_id="shapes", model_id="clip-b32")
        ref_i = _ort(clip_export.paths["image"], {"images": preprocess(images, pp_c)}, ["embeddings"])["embeddings"]
        assert _maxdiff(st.get_npy(st.key_from_uri(ec.image_embeddings.uri)), ref_i) < TOL
        t = client.embed_texts("clip-b32", TEXTS)
        ref_t = _ort(clip_export.paths["text"], {"input_ids": ClipTokenizer(77).encode(TEXTS)}, ["embeddings"])["embeddings"]
        assert _maxdiff(st.get_npy(st.key_from_uri(t.embeddings.uri)), ref_t) < TOL
        client.close()
