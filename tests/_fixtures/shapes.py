"""Test fixtures: small shape images (an ImageFolder tree) and a tiny CNN classifier trained on
them and exported to the registry's ONNX contract, for quick stack tests."""

from __future__ import annotations

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


def _tiny_cnn(num_classes: int, width: int = 16):
    import torch
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1),
                nn.BatchNorm2d(2 * width),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 4 * width, 3, padding=1),
                nn.BatchNorm2d(4 * width),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.head = nn.Linear(4 * width, num_classes)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.body(x)
            return self.head(features), features

    return TinyCNN()


def train_tiny_classifier(root: Path, epochs: int = 15, seed: int = 0):
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
            idx = perm[s : s + 32]
            logits, _ = model(x[idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def export_onnx(model, path: Path, input_size: tuple[int, int] = (64, 64)) -> Path:
    """Export a module returning (logits, features) with a dynamic batch dimension."""
    import torch

    dummy = torch.zeros(2, 3, *input_size)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["images"],
            output_names=["logits", "features"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path
