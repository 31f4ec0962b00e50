"""Training and evaluation on CPU for the benchmark world's models (pure library, torch in).

* :func:`train_classifier` - plain cross-entropy training (the inspected classifiers; no
  augmentation, so they pick up the world's planted shortcuts).
* :func:`pgd_l2` / :func:`train_robust` - L2 PGD adversarial training (Madry et al.) of the robust
  feature extractor on several heads at once; :func:`robust_accuracy` evaluates under attack.
* :func:`train_clip` - contrastive image–caption training of a small open_clip model.

Images are uint8 [N,H,W,3] arrays; models see ``(x/255 - mean)/std`` (see :class:`Normalized`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

Log = Callable[[str], None]


def to_unit(x_uint8: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x_uint8)).permute(0, 3, 1, 2).float().div_(255.0)


def _batches(n: int, batch: int, gen: torch.Generator | None) -> list[torch.Tensor]:
    idx = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return [idx[s : s + batch] for s in range(0, n, batch)]


@torch.no_grad()
def predict(
    model: nn.Module, x_uint8: np.ndarray, batch: int = 256, head: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None
) -> np.ndarray:
    """Logits (or ``head(model, x)``) for uint8 images, in eval mode; ``model`` takes [0,1] images."""
    model.eval()
    outs = []
    for s in range(0, len(x_uint8), batch):
        xb = to_unit(x_uint8[s : s + batch])
        out = head(model, xb) if head is not None else model(xb)[0]
        outs.append(out.numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))


def train_classifier(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float = 2e-3,
    batch: int = 128,
    weight_decay: float = 5e-4,
    seed: int = 0,
    log: Log = print,
) -> nn.Module:
    """Adam + cosine schedule; ``model`` takes [0,1] images and returns (logits, ...)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(y) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    yt = torch.from_numpy(y.astype(np.int64))
    for ep in range(epochs):
        model.train()
        t0, tot, correct, n = time.monotonic(), 0.0, 0, 0
        for idx in _batches(len(y), batch, gen):
            logits = model(to_unit(x[idx.numpy()]))[0]
            loss = F.cross_entropy(logits, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yt[idx]).sum())
            n += len(idx)
        log(f"  epoch {ep + 1}/{epochs}: loss {tot / n:.3f} train acc {correct / n:.3f} ({time.monotonic() - t0:.1f}s)")
    return model.eval()


def pgd_l2(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    eps: float,
    steps: int,
    step_size: float | None = None,
    random_start: bool = True,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """L2-bounded PGD maximising ``loss_fn(x_adv)`` for images ``x`` in [0,1]; returns x_adv."""
    step_size = step_size if step_size is not None else 2.5 * eps / max(1, steps)
    delta = torch.zeros_like(x)
    if random_start:
        delta = torch.randn(x.shape, generator=gen)
        delta = delta / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1).clamp_min(1e-12) * eps * torch.rand(x.shape[0], 1, 1, 1, generator=gen)
        delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = loss_fn(x + delta)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            g = grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1).clamp_min(1e-12)
            delta = delta + step_size * g
            norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            delta = delta * torch.clamp(eps / norm.clamp_min(1e-12), max=1.0)
            delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


@dataclasses.dataclass
class RobustConfig:
    eps: float = 1.0  # L2 radius in [0,1] pixel units (64x64x3 image)
    steps: int = 3
    step_size: float | None = None
    epochs: int = 10
    clean_epochs: int = 0  # warm-up epochs on clean images before the adversarial ones
    lr: float = 2e-3
    batch: int = 128
    weight_decay: float = 5e-4
    seed: int = 0


def train_robust(
    model: nn.Module,
    heads: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    x: np.ndarray,
    targets: Mapping[str, np.ndarray],
    cfg: RobustConfig,
    log: Log = print,
) -> nn.Module:
    """Adversarial training: each batch is replaced by its L2-PGD adversary against the summed head
    losses (after ``cfg.clean_epochs`` warm-up epochs on clean images)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x)
    steps = cfg.epochs * math.ceil(n / cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    ts = {k: torch.from_numpy(v.astype(np.int64)) for k, v in targets.items()}

    def loss_on(xb: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        out = heads(xb)
        return sum(F.cross_entropy(out[k], ts[k][idx]) for k in ts)

    for ep in range(cfg.epochs):
        t0, tot, m = time.monotonic(), 0.0, 0
        correct = {k: 0 for k in ts}
        for idx in _batches(n, cfg.batch, gen):
            xb = to_unit(x[idx.numpy()])
            if ep < cfg.clean_epochs:
                x_adv = xb
            else:
                model.eval()  # attack with frozen batch-norm statistics
                x_adv = pgd_l2(lambda z: loss_on(z, idx), xb, cfg.eps, cfg.steps, cfg.step_size, gen=gen)
            model.train()
            out = heads(x_adv)
            loss = sum(F.cross_entropy(out[k], ts[k][idx]) for k in ts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            m += len(idx)
            for k in ts:
                correct[k] += int((out[k].argmax(1) == ts[k][idx]).sum())
        accs = " ".join(f"{k} {c / m:.3f}" for k, c in correct.items())
        kind = "clean" if ep < cfg.clean_epochs else "adv"
        log(f"  epoch {ep + 1}/{cfg.epochs}: {kind} loss {tot / m:.3f} {kind} train acc {accs} ({time.monotonic() - t0:.1f}s)")
    return model.eval()


def robust_accuracy(
    heads: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    model: nn.Module,
    x: np.ndarray,
    targets: Mapping[str, np.ndarray],
    eps: float,
    steps: int,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Clean and adversarial (L2 PGD, ``steps`` steps, radius ``eps``) accuracy per head."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    ts = {k: torch.from_numpy(v.astype(np.int64)) for k, v in targets.items()}
    clean = {k: 0 for k in ts}
    adv = {k: 0 for k in ts}
    for s in range(0, len(x), batch):
        idx = torch.arange(s, min(len(x), s + batch))
        xb = to_unit(x[s : s + batch])
        with torch.no_grad():
            out = heads(xb)
        for k in ts:
            clean[k] += int((out[k].argmax(1) == ts[k][idx]).sum())
        for k in ts:  # attack each head on its own loss
            x_adv = pgd_l2(lambda z, k=k: F.cross_entropy(heads(z)[k], ts[k][idx]), xb, eps, steps, gen=gen)
            with torch.no_grad():
                adv[k] += int((heads(x_adv)[k].argmax(1) == ts[k][idx]).sum())
    n = len(x)
    return {k: {"clean": clean[k] / n, "adversarial": adv[k] / n} for k in ts}


def train_clip(
    model: nn.Module,
    tokenize: Callable[[Sequence[str]], torch.Tensor],
    x: np.ndarray,
    captions: Sequence[str],
    *,
    mean: Sequence[float],
    std: Sequence[float],
    epochs: int,
    lr: float = 1e-3,
    batch: int = 256,
    seed: int = 0,
    weight_decay: float = 0.1,
    log: Log = print,
) -> nn.Module:
    """Symmetric InfoNCE on (image, caption) pairs, open_clip's ``model(image, text)`` outputs."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    sd = torch.tensor(std).view(1, 3, 1, 1)
    tokens = tokenize(list(captions))
    for ep in range(epochs):
        model.train()
        t0, tot, nb = time.monotonic(), 0.0, 0
        for idx in _batches(len(x), batch, gen):
            img = (to_unit(x[idx.numpy()]) - m) / sd
            out = model(img, tokens[idx])
            if isinstance(out, dict):
                fi, ft, scale = out["image_features"], out["text_features"], out["logit_scale"]
            else:  # (image_features, text_features, logit_scale), already normalised
                fi, ft, scale = out[:3]
            logits = scale * fi @ ft.t()
            # identical captions in a batch are positives too (soft targets)
            same = (tokens[idx].unsqueeze(1) == tokens[idx].unsqueeze(0)).all(-1).float()
            target = same / same.sum(1, keepdim=True)
            loss = 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean() + torch.sum(-target * F.log_softmax(logits.t(), 1), 1).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            tot += float(loss.detach())
            nb += 1
        log(f"  epoch {ep + 1}/{epochs}: contrastive loss {tot / nb:.3f} ({time.monotonic() - t0:.1f}s)")
    return model.eval()
