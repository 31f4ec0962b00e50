"""The main job for now: a small generated dataset and a small trained classifier, end to end.

Starts the local stack, generates shape images (4 classes), trains a tiny CNN for a few seconds
on CPU, exports it to ONNX (``logits`` + ``features``), registers both, embeds every split
through Triton, compares Triton's numbers with in-process onnxruntime, prints a summary.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# sorted: the order a folder-style dataset (split/class/*.png) gives its class names
CLASSES = ["circle", "cross", "square", "triangle"]
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def draw_shape(cls: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Class ``cls`` of CLASSES on a random background, in the complementary colour."""
    shape = CLASSES[cls]
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int(255 - v) for v in bg)
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    else:
        w = max(2, r // 3)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fg)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fg)
    return im


def write_dataset(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """An ImageFolder tree root/split/class/i.png; returns root."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw_shape(c, rng).save(d / f"{i:04d}.png")
    return root


def _tiny_cnn(num_classes: int, width: int = 16):  # noqa: ANN202
    import torch
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
            self.head = nn.Linear(4 * width, num_classes)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.body(x)
            return self.head(features), features

    return TinyCNN()


def train_tiny_classifier(root: Path, epochs: int = 15, seed: int = 0):  # noqa: ANN201
    """Train the tiny CNN on root/train; returns the torch model (eval mode)."""
    import torch

    from failurelens.data.images import Preprocessing, preprocess

    torch.manual_seed(seed)
    pp = Preprocessing(input_size=(64, 64), mean=MEAN, std=STD)
    xs, ys = [], []
    for c, name in enumerate(CLASSES):
        for p in sorted((root / "train" / name).glob("*.png")):
            xs.append(Image.open(p).convert("RGB"))
            ys.append(c)
    x = torch.from_numpy(preprocess(xs, pp))
    y = torch.tensor(ys)
    model = _tiny_cnn(len(CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=g)
        for s in range(0, len(y), 32):
            idx = perm[s:s + 32]
            logits, _ = model(x[idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def export_onnx(model, path: Path, input_size: tuple[int, int] = (64, 64)) -> Path:  # noqa: ANN001
    """Export a module returning (logits, features) with a dynamic batch dimension."""
    import torch

    dummy = torch.zeros(2, 3, *input_size)
    with torch.no_grad():
        torch.onnx.export(model, (dummy,), str(path), input_names=["images"], output_names=["logits", "features"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return path


def run_demo(state_dir: str, store: str = "") -> int:
    import onnxruntime as ort

    from failurelens.cli import progress_bar
    from failurelens.clients import FailureLensClient, upload_dataset, upload_file
    from failurelens.data.images import Preprocessing, preprocess, read_image
    from failurelens.stack import Stack
    from failurelens.store import open_store
    from failurelens.v1 import common_pb2, registry_pb2

    t0 = time.monotonic()
    work = Path(state_dir).resolve() / "demo"
    print("1/6 generating the demo dataset (4 shape classes, 64x64) ...", flush=True)
    root = write_dataset(work / "images", {"train": 100, "val": 40, "test": 40})
    print("2/6 training a tiny CNN on CPU ...", flush=True)
    model = train_tiny_classifier(root)
    onnx_path = export_onnx(model, work / "tiny_cnn.onnx")
    print("3/6 starting the stack (Triton + 7 services) ...", flush=True)
    stack = Stack(state_dir, store=store).start()
    try:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        print("4/6 registering dataset and model ...", flush=True)
        manifest_uri, names = upload_dataset(st, root, "shapes")
        bar = progress_bar("register")
        ds = client.register_dataset(on_progress=bar, name="shapes", manifest_uri=manifest_uri, class_names=names, overwrite=True)
        bar.close()  # type: ignore[attr-defined]
        pp = common_pb2.Preprocessing(input_height=64, input_width=64, mean=MEAN, std=STD)
        m = client.register_model(name="tiny-cnn", kind=registry_pb2.MODEL_KIND_CLASSIFIER, onnx_uri=upload_file(st, onnx_path, "uploads/models/tiny-cnn/model.onnx"),
                                  preprocessing=pp, dataset_id="shapes", overwrite=True)
        print("5/6 embedding every split through Triton ...", flush=True)
        res = {}
        for split in ("train", "val", "test"):
            bar = progress_bar(f"embed {split}")
            res[split] = client.embed(on_progress=bar, dataset_id="shapes", model_id="tiny-cnn", splits=[split], overwrite=True)
            bar.close()  # type: ignore[attr-defined]
        print("6/6 checking Triton's numbers against in-process onnxruntime ...", flush=True)
        e = res["val"]
        feats = st.get_npy(st.key_from_uri(e.features.uri))
        logits = st.get_npy(st.key_from_uri(e.logits.uri))
        rows = st.get_npy(st.key_from_uri(e.rows.uri))
        manifest = st.get_parquet(st.key_from_uri(ds.manifest.uri)).to_pandas()
        lpp = Preprocessing(input_size=(64, 64), mean=MEAN, std=STD)
        x = preprocess([read_image(st, st.key_from_uri(manifest.uri[r])) for r in rows], lpp)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        ref_logits, ref_feats = sess.run(["logits", "features"], {"images": x})
        diff = max(float(np.abs(ref_logits - logits).max()), float(np.abs(ref_feats - feats).max()))
        print()
        print("failurelens demo summary")
        print(f"  dataset  {ds.dataset_id}: {ds.num_rows} images, classes {list(ds.class_names)}, splits {dict(ds.split_counts)}")
        print(f"  model    {m.model_id}: {m.num_classes} classes, {m.feature_dim}-d features, served by Triton as {list(m.triton_models)}")
        print(f"  {'split':6s} {'rows':>6s} {'accuracy':>9s} {'img/s':>8s}  features")
        for split, r in res.items():
            print(f"  {split:6s} {r.num_rows:6d} {r.accuracy:9.4f} {r.images_per_second:8.1f}  {r.features.uri}")
        print(f"  max |Triton - onnxruntime| over val logits+features: {diff:.3g}")
        print(f"  total {time.monotonic() - t0:.1f}s; logs in {stack.log_dir}")
        return 0 if diff < 1e-4 else 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(run_demo(".state"))
