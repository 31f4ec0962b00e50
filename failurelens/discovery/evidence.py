"""Visual evidence for one robust feature (Barlow §4): most activating images, CAM heatmaps, montages.

Pure functions: numpy / PIL in, arrays or PNG bytes out; nothing here talks to a server.

* :func:`top_activating` - the ``k`` rows of a feature matrix ``[N, D]`` (an array, a memmap or
  a ``.npy`` path, opened memory-mapped) with the highest activation of one feature, scanned in
  chunks so memory stays bounded for ImageNet-sized tables (N = 1.28M).
* :func:`cam_heatmap` - Barlow's heatmap: the feature's slice of the last conv map (the map the
  features are the global average of), min-max normalised to 0..1, then bilinearly resized to the
  image.  A constant slice gives zeros (no NaN).
* :func:`overlay` / :func:`jet` - the heatmap blended onto the image with a jet colour map.
* :func:`montage` / :func:`png_bytes` - a labelled grid of images as PNG bytes;
  :func:`feature_panel` composes Barlow's three rows (images, heatmaps, feature attacks).
* :func:`to_uint8` - float images in 0..1 (``[3,H,W]``/``[N,3,H,W]`` or channels-last) to uint8
  ``[.., H, W, 3]``, e.g. for the output of :func:`failurelens.discovery.attack.feature_attack`.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from failurelens.discovery import params as P

__all__ = [
    "LABEL_BAND",
    "EvidenceRenderer",
    "RenderedFeature",
    "MONTAGE_PAD",
    "cam_heatmap",
    "feature_panel",
    "jet",
    "montage",
    "overlay",
    "png_bytes",
    "to_uint8",
    "top_activating",
]

DEFAULT_CHUNK_ROWS = 1 << 16
#: montage geometry (pixels): gap around/between cells, height of a row's label band
MONTAGE_PAD = 2
LABEL_BAND = 14


# ------------------------------------------------------------------------------ top-k rows
def _open_features(features: Any) -> np.ndarray:
    if isinstance(features, (str, os.PathLike)):
        arr = np.load(os.fspath(features), mmap_mode="r", allow_pickle=False)
    else:
        arr = features if isinstance(features, np.ndarray) else np.asarray(features)
    if arr.ndim != 2:
        raise ValueError(f"features must be a 2-D [N, D] array, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"features must be numeric, got dtype {arr.dtype}")
    return arr


def _rows_index(rows: Any, n: int) -> np.ndarray | None:
    if rows is None:
        return None
    r = np.asarray(rows)
    if r.dtype == np.bool_:
        if r.shape != (n,):
            raise ValueError(f"boolean rows mask must have shape ({n},), got {r.shape}")
        return np.flatnonzero(r).astype(np.int64)
    if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
        raise TypeError("rows must be a 1-D array of integer row indices or a boolean mask")
    r = r.astype(np.int64, copy=False)
    if r.size and (r.min() < 0 or r.max() >= n):
        raise IndexError(f"rows out of range for {n} feature rows")
    return r


def top_activating(
    features: Any,
    feature: int,
    k: int,
    rows: Any = None,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows with the highest value of column ``feature``, highest first.

    ``features``: ``[N, D]`` array / memmap, or the path of a ``.npy`` file (opened with
    ``mmap_mode="r"``).  ``rows``: optional subset to search (integer row indices or a boolean
    mask of length N), e.g. the images of one class or of one failure leaf; returned indices are
    always rows of ``features``.  The column is read ``chunk_rows`` rows at a time and only the
    running top-k is kept, so memory is O(chunk_rows + k) whatever N is.

    Returns ``(row_indices int64[m], activations[m])`` with ``m = min(k, number of rows
    searched)``; ties are broken by the lower row index (the order of a stable argsort of the
    negated column), NaN ranks below every number.  Activations keep the float dtype of the
    table (integers become float64).
    """
    arr = _open_features(features)
    n, d = arr.shape
    feature = int(feature)
    if not -d <= feature < d:
        raise IndexError(f"feature {feature} out of range for {d} features")
    feature %= d
    k = int(k)
    if k < 0:
        raise ValueError("k must be >= 0")
    if int(chunk_rows) < 1:
        raise ValueError("chunk_rows must be >= 1")
    chunk_rows = int(chunk_rows)
    subset = _rows_index(rows, n)
    total = n if subset is None else subset.size
    out_dtype = np.result_type(arr.dtype, np.float32) if arr.dtype.kind == "f" else np.dtype(np.float64)

    best_v = np.empty(0, dtype=np.float64)
    best_i = np.empty(0, dtype=np.int64)
    if k == 0 or total == 0:
        return best_i, np.empty(0, dtype=out_dtype)
    for start in range(0, total, chunk_rows):
        stop = min(start + chunk_rows, total)
        if subset is None:
            ids = np.arange(start, stop, dtype=np.int64)
            col = np.asarray(arr[start:stop, feature], dtype=np.float64)
        else:
            ids = subset[start:stop]
            col = np.asarray(arr[ids, feature], dtype=np.float64)
        col = np.where(np.isnan(col), -np.inf, col)
        if best_v.size == k:  # only values that can still enter the top-k
            keep = col >= best_v[-1]
            col, ids = col[keep], ids[keep]
        if col.size > k:  # shrink the chunk to its own top-k (all ties at the boundary kept)
            kth = np.partition(col, col.size - k)[col.size - k]
            keep = col >= kth
            col, ids = col[keep], ids[keep]
        if not col.size:
            continue
        vals = np.concatenate([best_v, col])
        idx = np.concatenate([best_i, ids])
        order = np.lexsort((idx, -vals))[:k]
        best_v, best_i = vals[order], idx[order]
    activations = np.asarray(arr[np.sort(best_i), feature])  # the stored values (NaN stays NaN)
    activations = activations[np.argsort(np.argsort(best_i))].astype(out_dtype, copy=False)
    return best_i, activations


# ------------------------------------------------------------------------------ heatmaps
def _resize_bilinear(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D array, pixel centres aligned (``align_corners=False``, no antialias)."""
    h, w = a.shape
    out_h, out_w = size

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0.0, n_in - 1)
        i0 = np.floor(src).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, wy = axis(h, out_h)
    x0, x1, wx = axis(w, out_w)
    rows = a[y0] * (1.0 - wy)[:, None] + a[y1] * wy[:, None]
    return rows[:, x0] * (1.0 - wx)[None, :] + rows[:, x1] * wx[None, :]


def _size(size: Any) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    return h, w


def cam_heatmap(feature_map_slice: Any, size: Any = None) -> np.ndarray:
    """Barlow's CAM heatmap of one feature: ``float32 [H, W]`` in 0..1.

    ``feature_map_slice``: ``[h, w]``, the feature's channel of the last conv map (the robust
    model's ``feature_map`` output at index ``feature``; the feature itself is its mean).  It is
    min-max normalised to 0..1 (a constant map - e.g. a dead ReLU channel - gives zeros;
    non-finite cells count as the minimum) and then bilinearly resized to ``size = (H, W)``
    (an int means square; ``None`` keeps ``[h, w]``).  Bilinear interpolation is a convex
    combination, so the result stays in 0..1.
    """
    a = np.asarray(feature_map_slice, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"feature_map_slice must be a non-empty 2-D [h, w] array, got shape {a.shape}")
    finite = np.isfinite(a)
    if not finite.any():
        norm = np.zeros_like(a)
    else:
        lo, hi = a[finite].min(), a[finite].max()
        span = hi - lo
        if not span > 0 or not np.isfinite(span):
            norm = np.zeros_like(a)
        else:
            norm = np.where(finite, (a - lo) / span, 0.0)
    if size is not None:
        norm = _resize_bilinear(norm, _size(size))
    return np.clip(norm, 0.0, 1.0).astype(np.float32)


def jet(heat: Any) -> np.ndarray:
    """Jet colour map (blue -> cyan -> yellow -> red) of values in 0..1: uint8 ``[..., 3]``."""
    x = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float64), nan=0.0), 0.0, 1.0)
    rgb = np.stack([np.clip(1.5 - np.abs(4.0 * x - c), 0.0, 1.0) for c in (3.0, 2.0, 1.0)], axis=-1)
    return np.round(rgb * 255.0).astype(np.uint8)


def _as_rgb_uint8(image: Any, what: str = "image") -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"{what} must be uint8, got {img.dtype} (use to_uint8 for float images in 0..1)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{what} must be [H, W, 3] (or [H, W], [H, W, 4]), got shape {img.shape}")
    return img


def overlay(image: Any, heat: Any, alpha: float = 0.5) -> np.ndarray:
    """``image`` (uint8 ``[H, W, 3]``) blended with ``jet(heat)``: uint8 ``[H, W, 3]``.

    ``out = (1 - alpha) * image + alpha * jet(heat)``.  ``heat`` is ``[H, W]`` in 0..1 (values
    outside are clipped); a heat map of another size is bilinearly resized to the image.
    """
    img = _as_rgb_uint8(image)
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    h = np.asarray(heat, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"heat must be 2-D [H, W], got shape {h.shape}")
    if h.shape != img.shape[:2]:
        h = _resize_bilinear(np.nan_to_num(h, nan=0.0), (img.shape[0], img.shape[1]))
    out = (1.0 - alpha) * img.astype(np.float64) + alpha * jet(h).astype(np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ images out
def to_uint8(images01: Any) -> np.ndarray:
    """Float images in 0..1 -> uint8 channels-last.

    Accepts ``[3, H, W]``, ``[N, 3, H, W]`` (channels-first, as models and the attack use them;
    torch tensors too) or ``[H, W, 3]`` / ``[N, H, W, 3]``; values are clipped to 0..1 and
    rounded.  Returns ``[H, W, 3]`` or ``[N, H, W, 3]``.
    """
    if hasattr(images01, "detach"):
        images01 = images01.detach().cpu().numpy()
    a = np.asarray(images01, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = a.transpose(1, 2, 0)
    elif a.ndim == 4 and a.shape[1] == 3 and a.shape[3] != 3:
        a = a.transpose(0, 2, 3, 1)
    if a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"expected RGB images, got shape {np.asarray(images01).shape}")
    return np.round(np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)


def png_bytes(image: Any) -> bytes:
    """PNG encoding of a uint8 image ``[H, W]`` (grey), ``[H, W, 3]`` or ``[H, W, 4]``."""
    from PIL import Image

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))):
        raise ValueError(f"image must be [H, W], [H, W, 3] or [H, W, 4], got shape {img.shape}")
    mode = "L" if img.ndim == 2 else ("RGB" if img.shape[2] == 3 else "RGBA")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img), mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def montage(
    rows_of_images: Sequence[Sequence[Any]],
    labels: Sequence[str] | None = None,
    scale: int = 2,
    *,
    background: tuple[int, int, int] = (32, 32, 32),
    text_color: tuple[int, int, int] = (235, 235, 235),
) -> bytes:
    """A grid of uint8 images as PNG bytes: one grid row per inner list.

    Every cell is ``(max H * scale) x (max W * scale)`` (images enlarged with nearest neighbour,
    smaller ones centred); cells are :data:`MONTAGE_PAD` pixels apart and from the border.  With
    ``labels`` (one string per row, e.g. ``"most activating"``, ``"heatmap"``,
    ``"feature attack"``) a band of :data:`LABEL_BAND` pixels above each row carries it.  So the
    PNG is ``PAD + cols * (cell_w + PAD)`` wide and ``PAD + rows * (band + cell_h + PAD)`` high,
    ``cols`` being the longest row.  Rows may be empty or shorter (the rest stays background).
    """
    from PIL import Image, ImageDraw, ImageFont

    rows = [[_as_rgb_uint8(im, "montage image") for im in row] for row in rows_of_images]
    if not rows or not any(rows):
        raise ValueError("montage needs at least one image")
    if labels is not None:
        labels = [str(s) for s in labels]
        if len(labels) != len(rows):
            raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    scale = int(scale)
    if scale < 1:
        raise ValueError("scale must be >= 1")
    cell_h = max(im.shape[0] for row in rows for im in row) * scale
    cell_w = max(im.shape[1] for row in rows for im in row) * scale
    cols = max(len(row) for row in rows)
    band = LABEL_BAND if labels is not None else 0
    pad = MONTAGE_PAD
    width = pad + cols * (cell_w + pad)
    height = pad + len(rows) * (band + cell_h + pad)
    sheet = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default() if labels is not None else None
    y = pad
    for r, row in enumerate(rows):
        if labels is not None:
            draw.text((pad + 1, y + 1), labels[r], fill=text_color, font=font)
            y += band
        for c, im in enumerate(row):
            tile = Image.fromarray(np.ascontiguousarray(im), mode="RGB")
            if scale != 1:
                tile = tile.resize((im.shape[1] * scale, im.shape[0] * scale), Image.Resampling.NEAREST)
            x0 = pad + c * (cell_w + pad) + (cell_w - tile.width) // 2
            sheet.paste(tile, (x0, y + (cell_h - tile.height) // 2))
        y += cell_h + pad
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def feature_panel(
    images: Sequence[Any],
    feature_maps: Sequence[Any],
    attacked: Sequence[Any] | None = None,
    *,
    alpha: float = 0.5,
    scale: int = 2,
    labels: Sequence[str] = ("most activating", "heatmap", "feature attack"),
) -> bytes:
    """Barlow's visualisation of one feature as PNG bytes: row A the (top-activating) images,
    row B their CAM heatmaps (:func:`cam_heatmap` of each ``feature_maps[i]`` = the feature's
    ``[h, w]`` slice, overlaid on the image), row C (optional) the feature-attacked images
    (uint8, or float in 0..1 as :func:`to_uint8` takes them)."""
    imgs = [_as_rgb_uint8(im) for im in images]
    if len(feature_maps) != len(imgs):
        raise ValueError(f"{len(feature_maps)} feature maps for {len(imgs)} images")
    heat = [overlay(im, cam_heatmap(fm, im.shape[:2]), alpha) for im, fm in zip(imgs, feature_maps)]
    grid = [imgs, heat]
    if attacked is not None:
        att = [im if np.asarray(im).dtype == np.uint8 else to_uint8(im) for im in attacked]
        grid.append([_as_rgb_uint8(im) for im in att])
    return montage(grid, labels=list(labels)[: len(grid)], scale=scale)


# ------------------------------------------------------------------------------ estimator
@dataclasses.dataclass
class RenderedFeature:
    """PNGs of one feature: its top images, their heatmaps and feature attacks (empty when not
    rendered), and the montage of all rows."""

    images: list[bytes]
    heatmaps: list[bytes]
    attacks: list[bytes]
    montage: bytes


class EvidenceRenderer(P.Estimator):
    """Barlow's visual evidence of robust features: the ``top_k`` most activating images of each
    feature, their CAM heatmaps and feature attacks (``attack_steps`` steps of size
    ``attack_step_size``, L2 budget ``attack_epsilon`` in [0,1] pixel units), as PNGs."""

    def __init__(self, top_k: int = 8, attack_steps: int = 40, attack_step_size: float = 0.5, attack_epsilon: float = 10.0) -> None:
        self.top_k = top_k
        self.attack_steps = attack_steps
        self.attack_step_size = attack_step_size
        self.attack_epsilon = attack_epsilon

    def _checked_params(self) -> dict[str, Any]:
        P.need(
            P.is_real(self.attack_step_size) and self.attack_step_size > 0,
            "attack_step_size",
            f"attack_step_size={self.attack_step_size!r}: use a positive number",
        )
        P.need(
            P.is_real(self.attack_epsilon) and self.attack_epsilon > 0,
            "attack_epsilon",
            f"attack_epsilon={self.attack_epsilon!r}: use a positive number",
        )
        return {
            "top_k": P.positive_int(self.top_k, "top_k", 1, 64),
            "attack_steps": P.positive_int(self.attack_steps, "attack_steps", 1, 1000),
            "attack_step_size": float(self.attack_step_size),
            "attack_epsilon": float(self.attack_epsilon),
        }

    def top_rows(self, features: Any, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, activations) of the feature's ``top_k`` most activating rows."""
        return top_activating(features, feature, int(self.validate_params()["top_k"]))

    def attack_inputs(self, images01: np.ndarray, feature: int) -> dict[str, np.ndarray]:
        """The inputs of the feature-attack model (``<extractor>__attack``) for these images."""
        p = self.validate_params()
        n = len(images01)
        return {
            "images": np.asarray(images01, np.float32),
            "feature": np.full((n, 1), feature, np.int64),
            "steps": np.full((n, 1), p["attack_steps"], np.int32),
            "step_size": np.full((n, 1), p["attack_step_size"], np.float32),
            "epsilon": np.full((n, 1), p["attack_epsilon"], np.float32),
        }

    def render(self, images01: np.ndarray, feature_maps: np.ndarray | None = None, attacked01: np.ndarray | None = None) -> RenderedFeature:
        """PNGs of the images (float [N,3,H,W] in 0..1), their heatmaps (``feature_maps``: the
        feature's [N,h,w] slices of the conv map) and the attacked images, plus the montage."""
        shown = list(to_uint8(images01))
        rows: list[list[np.ndarray]] = [shown]
        labels = ["most activating"]
        heats: list[np.ndarray] = []
        if feature_maps is not None:
            heats = [overlay(im, cam_heatmap(fm, im.shape[:2])) for im, fm in zip(shown, feature_maps)]
            rows.append(heats)
            labels.append("heatmap")
        attacks: list[np.ndarray] = []
        if attacked01 is not None:
            attacks = list(to_uint8(attacked01))
            rows.append(attacks)
            labels.append("feature attack")
        return RenderedFeature(
            images=[png_bytes(im) for im in shown],
            heatmaps=[png_bytes(h) for h in heats],
            attacks=[png_bytes(a) for a in attacks],
            montage=montage(rows, labels=labels),
        )
