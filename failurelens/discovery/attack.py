"""Barlow's *feature attack*: amplify one robust feature in an image by gradient ascent (pure torch).

Following Barlow (§4, after Engstrom et al., "Adversarial robustness as a prior for learned
representations"), the image is changed to *maximise* one neuron of the robust model's
representation layer, within an L2 ball around the original image.  For a robust model the
change is visible and shows what the feature responds to.

Algorithm (:func:`feature_attack`), per image, in pixel space ``[0, 1]``::

    x_0 = image
    for t in 0 .. steps-1:
        g   = d activation(x_t) / d x_t            (activation = features[feature])
        x'  = x_t + step_size * g / ||g||_2        (L2-normalised ascent step)
        x'  = x_0 + (x' - x_0) * min(1, epsilon / ||x' - x_0||_2)   (project on the L2 ball)
        x_t+1 = clamp(x', 0, 1)                   (stays in the ball: x_0 is in the box)

The returned image is the iterate with the highest activation (``use_best=True``, the default,
as in the robustness library; the activation can dip when a step overshoots), so
``act_after >= act_before`` always holds; ``use_best=False`` returns the last iterate.  Images
are independent (the model is put in eval mode, so batch-norm uses its running statistics): a
batch gives the same result as one image at a time, up to float round-off.  Nothing is random;
on the same device, model and thread count the result is reproducible.

This file imports only torch: :func:`failurelens.triton.repository.write_attack_model` copies
it next to the Triton python-backend model (``failurelens/triton/attack_model.py``), which runs
exactly this code where the model is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["feature_activation", "feature_attack"]


def _select(out: Any, output: str | int | None) -> torch.Tensor:
    """The features tensor out of a model output (tensor, tuple/list or dict)."""
    if isinstance(out, torch.Tensor):
        t = out
    elif isinstance(out, dict):
        key = "features" if output is None else output
        if key not in out:
            if output is None and len(out) == 1:
                key = next(iter(out))
            else:
                raise KeyError(f"model output has no {key!r}; keys {sorted(map(str, out))} (pass output=...)")
        t = out[key]
    elif isinstance(out, (tuple, list)):
        t = out[0 if output is None else int(output)]
    else:
        raise TypeError(f"model returned {type(out).__name__}; expected a tensor, tuple/list or dict")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"selected model output is {type(t).__name__}, not a tensor")
    if t.ndim > 2:  # a feature map [N, D, h, w]: the representation is its global average
        t = t.flatten(2).mean(dim=2)
    if t.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(t.shape)}")
    return t


def _stats(values: Sequence[float] | torch.Tensor | None, like: torch.Tensor, what: str) -> torch.Tensor | None:
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=like.dtype, device=like.device).flatten()
    if t.numel() == 1:
        t = t.expand(like.shape[1])
    if t.numel() != like.shape[1]:
        raise ValueError(f"{what} has {t.numel()} values for {like.shape[1]} channels")
    if what == "std" and bool((t == 0).any()):
        raise ValueError("std must be non-zero")
    return t.view(1, -1, 1, 1)


def feature_activation(
    model: torch.nn.Module,
    images01: torch.Tensor,
    feature: int | torch.Tensor,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
    *,
    output: str | int | None = None,
) -> torch.Tensor:
    """Activation ``[N]`` of ``feature`` (int or per-image LongTensor ``[N]``) for images in [0,1]
    (differentiable; the model's mode is left as it is)."""
    m = _stats(mean, images01, "mean")
    s = _stats(std, images01, "std")
    x = images01
    if m is not None:
        x = x - m
    if s is not None:
        x = x / s
    feats = _select(model(x), output)
    idx = _feature_index(feature, feats.shape[0], feats.shape[1], feats.device)
    return feats.gather(1, idx.view(-1, 1)).squeeze(1)


def _feature_index(feature: Any, n: int, d: int, device: torch.device) -> torch.Tensor:
    idx = torch.as_tensor(feature, device=device)
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise TypeError("feature must be an int or an integer tensor")
    idx = idx.to(torch.long).flatten()
    if idx.numel() == 1:
        idx = idx.expand(n)
    if idx.numel() != n:
        raise ValueError(f"feature has {idx.numel()} entries for {n} images")
    if n and (int(idx.min()) < 0 or int(idx.max()) >= d):
        raise IndexError(f"feature index out of range for {d} features")
    return idx


def feature_attack(
    model: torch.nn.Module,
    images01: torch.Tensor,
    feature: int | torch.Tensor,
    steps: int = 40,
    step_size: float = 0.5,
    epsilon: float = 10.0,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
    *,
    output: str | int | None = None,
    use_best: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Maximise one feature of ``model`` by L2 projected gradient ascent on the image.

    ``model``: a module mapping *normalised* images ``(x - mean) / std`` to the representation.
    Its output may be the features tensor ``[N, D]``, a tuple/list whose first element is it
    (e.g. the robust world model's ``(features, feature_map)`` or onnx2torch's list of graph
    outputs) or a dict with a ``"features"`` key; ``output=`` picks another element/key.  A 4-D
    output ``[N, D, h, w]`` is averaged over space.  ``mean``/``std``: per-channel normalisation
    (3 values, or one for all); ``None`` means the model takes [0,1] pixels as they are.

    ``images01``: float ``[N, 3, H, W]`` in [0, 1] (the model's device).  ``feature``: an int, or
    a LongTensor ``[N]`` with one feature per image.  ``steps`` ascent steps of L2 length
    ``step_size`` (in [0,1] pixel units over the whole image), projected on the L2 ball of
    radius ``epsilon`` around the original and clamped to [0, 1].  Defaults are sized for the
    64x64 world images (an image has sqrt(3*64*64) = 111 L2 units of full range).

    Returns ``(attacked01 [N,3,H,W], act_before [N], act_after [N])`` (detached, float32 on the
    images' device); ``act_after`` is the activation of ``attacked01``.  The model is run in
    eval mode (restored afterwards); parameter gradients are not touched.
    """
    if not isinstance(images01, torch.Tensor):
        images01 = torch.as_tensor(images01)
    if images01.ndim != 4 or images01.shape[1] != 3:
        raise ValueError(f"images01 must be [N, 3, H, W], got shape {tuple(images01.shape)}")
    steps = int(steps)
    step_size = float(step_size)
    epsilon = float(epsilon)
    if steps < 0 or step_size < 0 or epsilon < 0:
        raise ValueError("steps, step_size and epsilon must be >= 0")
    x0 = images01.detach().to(torch.float32)
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("images01 contains NaN or inf")
    x0 = x0.clamp(0.0, 1.0)
    view = (-1, 1, 1, 1)

    was_training = model.training
    model.eval()
    try:

        def act(x: torch.Tensor) -> torch.Tensor:
            return feature_activation(model, x, feature, mean, std, output=output)

        with torch.no_grad():
            before = act(x0).detach().float()
        x = x0.clone()
        best_x, best_a = x0.clone(), before.clone()
        last_a = before
        for t in range(steps):
            x.requires_grad_(True)
            with torch.enable_grad():
                a = act(x)
                (grad,) = torch.autograd.grad(a.sum(), x)
            a = a.detach().float()
            if t > 0 and use_best:  # a is the activation of the current iterate x_t
                better = a > best_a
                best_a = torch.where(better, a, best_a)
                best_x = torch.where(better.view(view), x.detach(), best_x)
            g_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            with torch.no_grad():
                step = x.detach() + step_size * grad / g_norm
                delta = step - x0
                d_norm = delta.flatten(1).norm(dim=1).view(view)
                factor = torch.clamp(epsilon / d_norm.clamp_min(1e-12), max=1.0)
                x = (x0 + delta * factor).clamp(0.0, 1.0)
        if steps:
            with torch.no_grad():
                last_a = act(x).detach().float()
        if use_best:
            better = last_a > best_a
            best_a = torch.where(better, last_a, best_a)
            best_x = torch.where(better.view(view), x, best_x)
            return best_x.detach(), before, best_a
        return x.detach(), before, last_a
    finally:
        model.train(was_training)
