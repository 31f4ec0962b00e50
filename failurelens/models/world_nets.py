"""Small networks trained on the benchmark world (64x64 images) on CPU.

* Inspected classifiers, two architecture families: :class:`ConvNet` (plain VGG-style stack) and
  :class:`TinyResNet` (residual blocks). ``forward`` returns ``(logits, features)`` where
  ``features`` is the penultimate representation (global-average-pooled last conv map).
* The robust feature extractor :class:`RobustResNet`: a residual network with heads for object
  class, background and colour (so its features describe objects *and* scenes), adversarially
  trained with L2 PGD. ``forward`` returns ``(features, feature_map)``; ``features`` is the
  spatial mean of ``feature_map`` so a feature's CAM heatmap is its slice of the map.
* :func:`world_clip_config`: a small open_clip configuration for the image–caption model.

Inputs are normalised images (see ``Preprocessing``), float32 [N,3,64,64].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """Family A: conv-bn-relu stacks with max pooling, GAP, linear head."""

    family = "convnet"

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv_bn(3, w, stride=2),  # 32
            _conv_bn(w, 2 * w),
            nn.MaxPool2d(2),  # 16
            _conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),  # 8
            _conv_bn(4 * w, 4 * w),  # 8
        )
        self.head = nn.Linear(4 * w, num_classes)
        self.feature_dim = 4 * w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x).mean(dim=(2, 3))
        return self.head(features), features


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.short is None else self.short(x)))


def _resnet_trunk(widths: tuple[int, ...], blocks: int = 1) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = [_conv_bn(3, widths[0], stride=2)]  # 32x32
    cin = widths[0]
    for i, w in enumerate(widths):
        for b in range(blocks):
            layers.append(BasicBlock(cin, w, 2 if (b == 0 and i > 0) else 1))
            cin = w
    return nn.Sequential(*layers), cin


class TinyResNet(nn.Module):
    """Family B: a small ResNet (stride-2 stem, one basic block per stage), GAP, linear head."""

    family = "resnet"

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        self.body, dim = _resnet_trunk(widths)
        self.head = nn.Linear(dim, num_classes)
        self.feature_dim = dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x).mean(dim=(2, 3))
        return self.head(features), features


class RobustResNet(nn.Module):
    """ResNet-style feature extractor with class/background/colour heads (heads not exported)."""

    def __init__(self, num_classes: int, num_backgrounds: int, num_colors: int, widths: tuple[int, ...] = (32, 64, 128), blocks: int = 1) -> None:
        super().__init__()
        self.body, dim = _resnet_trunk(widths, blocks)
        self.feature_dim = dim
        self.heads = nn.ModuleDict(
            {
                "class": nn.Linear(dim, num_classes),
                "background": nn.Linear(dim, num_backgrounds),
                "color": nn.Linear(dim, num_colors),
            }
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fmap = self.body(x)
        return fmap.mean(dim=(2, 3)), fmap

    def head_logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features, _ = self(x)
        return {k: h(features) for k, h in self.heads.items()}


class Normalized(nn.Module):
    """Wraps a model so it takes images in [0,1] (attacks work in pixel space)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor):
        return self.model((x - self.mean) / self.std)


def world_clip_config(embed_dim: int = 96, context_length: int = 20) -> dict:
    """A small open_clip model config for 64x64 images and short captions (the world's captions
    are at most 12 BPE tokens plus start/end): a 3-layer ViT on 16x16 patches (4x4 grid) and a
    2-layer text transformer; small enough to train in minutes on 2 CPU cores."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 64, "layers": 3, "width": 128, "patch_size": 16, "head_width": 32},
        "text_cfg": {"context_length": context_length, "vocab_size": 49408, "width": 96, "heads": 3, "layers": 2},
    }
