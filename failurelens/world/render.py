"""Procedural rendering of one benchmark-world image: a shape (the class) in a named colour on a
textured scene, optionally blurred or noisy.

Everything is deterministic given the random generator passed in; :func:`render` wraps it with a
seed. Scenes are numpy textures drawn at the output resolution; the shape is drawn with PIL at
``supersample`` x the resolution and box-downsampled into a soft alpha mask, outlined (dark on
light scenes, light on dark ones, so every colour stays visible on every scene) and shaded by a
random light direction.

The per-image generator is split into three independent streams (background, object,
corruption), so the same seed gives the same object (rotation, shading, colour jitter) whatever
the background - counterfactual "{class} {background}" images for mitigation.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .config import BACKGROUND_PHRASES, COLOR_RGB, CORRUPTIONS, SHAPES

__all__ = [
    "DEFAULT_SIZES",
    "ImageAttributes",
    "RenderLayers",
    "caption",
    "contact_sheet",
    "render",
    "render_background",
    "render_image",
    "render_layers",
    "shape_mask",
]

#: object radius range (fraction of the image side) per size name
DEFAULT_SIZES: dict[str, tuple[float, float]] = {"small": (0.13, 0.17), "large": (0.24, 0.29)}
#: maximal rotation of a shape, degrees (either way)
MAX_ROTATION = 15.0
#: maximal aspect stretch of a shape (1 = none)
MAX_STRETCH = 1.0


@dataclasses.dataclass(frozen=True)
class ImageAttributes:
    """What an image shows. ``x``/``y``: the object's centre as fractions of the image side."""

    label: str  # the class = the shape
    background: str
    color: str
    size: str = "large"
    x: float = 0.5
    y: float = 0.5
    corruption: str = "none"


@dataclasses.dataclass
class RenderLayers:
    """An image and its parts: ``background`` (uint8 HxWx3, the scene alone, before corruption),
    ``alpha`` (float32 HxW in 0..1, the shape's coverage), ``outline`` (float32 HxW, the shape
    grown by its outline, >= alpha)."""

    image: Image.Image
    background: np.ndarray
    alpha: np.ndarray
    outline: np.ndarray


# ----------------------------------------------------------------------------------- caption
def caption(attrs: ImageAttributes) -> str:
    """``"a photo of a small red star on sand"``; blurred: ``"a blurry photo of ..."``, noisy:
    ``"a noisy photo of ..."``."""
    phrase = BACKGROUND_PHRASES.get(attrs.background, f"on {attrs.background}")
    kind = {"blur": "a blurry photo", "noise": "a noisy photo"}.get(attrs.corruption, "a photo")
    return f"{kind} of a {attrs.size} {attrs.color} {attrs.label} {phrase}"


# ------------------------------------------------------------------------------- noise utils
@functools.lru_cache(maxsize=64)
def _interp(n: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(n, dtype=np.float32) + 0.5) * (cells / n)
    i0 = np.minimum(np.floor(t).astype(np.intp), cells - 1)
    f = t - i0
    f = f * f * (3.0 - 2.0 * f)  # smoothstep
    return i0, f.astype(np.float32)


def _noise(rng: np.random.Generator, n: int, cy: int, cx: int) -> np.ndarray:
    """Smooth value noise in [0, 1], ``cy`` x ``cx`` lattice cells over an n x n image."""
    g = rng.random((cy + 1, cx + 1), dtype=np.float32)
    iy, fy = _interp(n, cy)
    ix, fx = _interp(n, cx)
    rows0, rows1 = g[iy], g[iy + 1]
    top = rows0[:, ix] + (rows0[:, ix + 1] - rows0[:, ix]) * fx
    bot = rows1[:, ix] + (rows1[:, ix + 1] - rows1[:, ix]) * fx
    return top + (bot - top) * fy[:, None]


def _fbm(rng: np.random.Generator, n: int, cells: int, octaves: int = 3) -> np.ndarray:
    out = np.zeros((n, n), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * _noise(rng, n, cells, cells)
        total += amp
        amp *= 0.5
        cells *= 2
    return out / total


@functools.lru_cache(maxsize=16)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    return (yy + 0.5) / n, (xx + 0.5) / n


def _rgb(*c: float) -> np.ndarray:
    return np.array(c, np.float32)


def _tint(rng: np.random.Generator, base: Sequence[float], amount: float = 0.06) -> np.ndarray:
    """The base colour with a small random per-image variation."""
    return np.clip(
        np.asarray(base, np.float32) * (1.0 + rng.uniform(-amount, amount, 3)).astype(np.float32) * np.float32(rng.uniform(1 - amount, 1 + amount)),
        0,
        1,
    )


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


# ------------------------------------------------------------------------------- backgrounds
def _bg_grass(rng: np.random.Generator, n: int) -> np.ndarray:
    base = _tint(rng, (0.24, 0.50, 0.11))
    blades = _noise(rng, n, 3, max(8, n // 2))  # vertical streaks
    blades2 = _noise(rng, n, 5, max(8, n // 3))
    low = _fbm(rng, n, 3, 2)
    shade = 0.62 + 0.35 * low + 0.45 * (blades - 0.5) + 0.25 * (blades2 - 0.5)
    img = base * shade[..., None]
    tips = _smoothstep(0.72, 0.9, blades2)[..., None]
    return img + tips * _rgb(0.10, 0.14, 0.0)


def _bg_water(rng: np.random.Generator, n: int) -> np.ndarray:
    yy, xx = _grid(n)
    base = _tint(rng, (0.04, 0.36, 0.60))
    deep = _fbm(rng, n, 3, 2)
    warp = _noise(rng, n, 3, 3)
    freq = rng.uniform(9.0, 13.0)
    phase = rng.uniform(0, 2 * math.pi)
    waves = np.sin(2 * math.pi * (yy * freq + 1.6 * warp + 0.35 * np.sin(2 * math.pi * xx * rng.uniform(1.0, 2.0))) + phase)
    crest = _smoothstep(0.55, 0.95, waves)
    img = base * (0.75 + 0.4 * deep)[..., None] - 0.05 * (waves < -0.6)[..., None]
    return img + crest[..., None] * _rgb(0.30, 0.42, 0.42)


def _bg_sand(rng: np.random.Generator, n: int) -> np.ndarray:
    yy, xx = _grid(n)
    base = _tint(rng, (0.86, 0.72, 0.46), 0.04)
    a = rng.uniform(0, math.pi)
    warp = _noise(rng, n, 3, 3)
    dunes = np.sin(2 * math.pi * ((xx * math.cos(a) + yy * math.sin(a)) * rng.uniform(2.5, 4.0) + 0.8 * warp))
    grain = rng.normal(0, 0.045, (n, n)).astype(np.float32)
    shade = 0.93 + 0.07 * dunes + grain
    return base * shade[..., None]


def _bg_snow(rng: np.random.Generator, n: int) -> np.ndarray:
    base = _tint(rng, (0.80, 0.85, 0.94), 0.03)
    low = _fbm(rng, n, 2, 3)
    shadow = _rgb(-0.16, -0.10, -0.02) * (1 - low)[..., None]
    img = base + shadow + rng.normal(0, 0.012, (n, n, 1)).astype(np.float32)
    sparkle = rng.random((n, n)) < 0.02
    img[sparkle] = 1.0
    return img


def _bg_sky(rng: np.random.Generator, n: int) -> np.ndarray:
    yy, _ = _grid(n)
    top = _tint(rng, (0.16, 0.44, 0.88), 0.05)
    bottom = _tint(rng, (0.55, 0.76, 0.97), 0.04)
    t = yy[..., None]
    img = top * (1 - t) + bottom * t
    clouds = _fbm(rng, n, 3, 3)
    cover = _smoothstep(rng.uniform(0.5, 0.6), 0.78, clouds)[..., None] * 0.9
    return img * (1 - cover) + _rgb(0.97, 0.97, 0.99) * cover


def _bg_brick(rng: np.random.Generator, n: int) -> np.ndarray:
    h = n / rng.uniform(6.0, 7.5)  # brick height in px
    w = 2 * h
    m = max(1.0, n / 64)  # mortar width
    oy, ox = rng.uniform(0, h), rng.uniform(0, w)
    ypx = np.arange(n, dtype=np.float32) + oy
    row = np.floor(ypx / h).astype(np.intp)
    xpx = np.arange(n, dtype=np.float32)[None, :] + ox + (row[:, None] % 2) * (w / 2)
    col = np.floor(xpx / w).astype(np.intp)
    var = rng.uniform(0.78, 1.12, (row.max() + 2, col.max() + 2)).astype(np.float32)
    brick = _tint(rng, (0.60, 0.26, 0.17), 0.05)
    img = brick * var[row[:, None], col][..., None]
    img = img * (1 + rng.normal(0, 0.05, (n, n, 1)).astype(np.float32))
    mortar = ((ypx % h) < m)[:, None] | ((xpx % w) < m)
    img[mortar] = _tint(rng, (0.74, 0.71, 0.66), 0.03)
    return img


def _bg_wood(rng: np.random.Generator, n: int) -> np.ndarray:
    yy, _ = _grid(n)
    base = _tint(rng, (0.56, 0.35, 0.17), 0.05)
    pw = n / rng.uniform(2.6, 3.6)  # plank width, planks run horizontally
    oy = rng.uniform(0, pw)
    ypx = np.arange(n, dtype=np.float32) + oy
    plank = np.floor(ypx / pw).astype(np.intp)
    pvar = rng.uniform(0.82, 1.12, plank.max() + 1).astype(np.float32)[plank]
    warp = _noise(rng, n, 2, 4)
    grain = np.sin(2 * math.pi * (yy * rng.uniform(14, 20) + 2.2 * warp))
    fine = _noise(rng, n, 12, 3)
    shade = pvar[:, None] * (0.9 + 0.1 * grain + 0.12 * (fine - 0.5))
    img = base * shade[..., None]
    seam = (ypx % pw) < max(1.0, n / 64)
    img[seam] *= 0.45
    return img


def _bg_night(rng: np.random.Generator, n: int) -> np.ndarray:
    yy, _ = _grid(n)
    top = _tint(rng, (0.02, 0.03, 0.09), 0.1)
    bottom = _tint(rng, (0.07, 0.08, 0.22), 0.1)
    t = yy[..., None]
    img = top * (1 - t) + bottom * t
    haze = _fbm(rng, n, 3, 2)
    img = img + (haze[..., None] - 0.5) * _rgb(0.02, 0.02, 0.05)
    k = int(rng.integers(n * n // 160, n * n // 90))
    sy, sx = rng.integers(0, n, k), rng.integers(0, n, k)
    b = rng.uniform(0.45, 1.0, (k, 1)).astype(np.float32)
    img[sy, sx] = b * _rgb(1.0, 0.97, 0.85)
    return img


def _bg_road(rng: np.random.Generator, n: int) -> np.ndarray:
    base = _tint(rng, (0.31, 0.31, 0.33), 0.05)
    low = _fbm(rng, n, 3, 2)
    grain = rng.normal(0, 0.06, (n, n)).astype(np.float32)
    img = base * (0.85 + 0.3 * low + grain)[..., None]
    lw = max(2, round(n / 28))
    pos = int(rng.integers(n // 6, n - n // 6 - lw))
    dash, gap = n / 5, n / 8
    off = rng.uniform(0, dash + gap)
    along = (np.arange(n) + off) % (dash + gap) < dash
    paint = _tint(rng, (0.92, 0.92, 0.88), 0.03)
    if rng.random() < 0.5:  # horizontal line
        img[pos : pos + lw, along] = paint
    else:
        img[along, pos : pos + lw] = paint
    return img


def _bg_tiles(rng: np.random.Generator, n: int) -> np.ndarray:
    t = n / rng.uniform(4.5, 5.5)
    g = max(1.0, n / 64)
    oy, ox = rng.uniform(0, t, 2)
    ypx = np.arange(n, dtype=np.float32) + oy
    xpx = np.arange(n, dtype=np.float32) + ox
    r = np.floor(ypx / t).astype(np.intp)
    c = np.floor(xpx / t).astype(np.intp)
    checker = ((r[:, None] + c[None, :]) % 2).astype(np.float32)[..., None]
    light = _tint(rng, (0.90, 0.93, 0.92), 0.03)
    dark = _tint(rng, (0.16, 0.50, 0.56), 0.06)
    img = light * (1 - checker) + dark * checker
    gloss = 1.0 + 0.08 * (((xpx % t) / t)[None, :] - ((ypx % t) / t)[:, None])
    img = img * gloss[..., None]
    grout = ((ypx % t) < g)[:, None] | ((xpx % t) < g)[None, :]
    img[grout] = _tint(rng, (0.55, 0.56, 0.58), 0.03)
    return img


def _bg_lava(rng: np.random.Generator, n: int) -> np.ndarray:
    crust = _tint(rng, (0.16, 0.07, 0.05), 0.1)
    f = _fbm(rng, n, 3, 3)
    cracks = 1 - _smoothstep(0.0, 0.06, np.abs(f - 0.5))
    glow = _rgb(1.0, 0.45, 0.05) * cracks[..., None] + _rgb(0.35, 0.05, 0.0) * (_noise(rng, n, 4, 4) ** 2)[..., None]
    return crust + glow


def _bg_forest(rng: np.random.Generator, n: int) -> np.ndarray:
    leaves = _tint(rng, (0.07, 0.26, 0.08), 0.08)
    f = _fbm(rng, n, 4, 3)
    img = leaves * (0.6 + 0.8 * f)[..., None]
    xs = np.arange(n)
    for _ in range(int(rng.integers(2, 5))):
        cx, w = rng.uniform(0, n), rng.uniform(n / 24, n / 11)
        trunk = np.abs(xs - cx) < w
        bark = _tint(rng, (0.30, 0.19, 0.10), 0.1) * (0.8 + 0.3 * _noise(rng, n, 8, 1)[:, :1])  # (n, 3)
        img[:, trunk] = bark[:, None, :]
    light = _smoothstep(0.7, 0.85, _noise(rng, n, 6, 6))[..., None]
    return img + light * _rgb(0.12, 0.18, 0.06)


_BACKGROUNDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "grass": _bg_grass,
    "water": _bg_water,
    "sand": _bg_sand,
    "snow": _bg_snow,
    "sky": _bg_sky,
    "brick": _bg_brick,
    "wood": _bg_wood,
    "night": _bg_night,
    "road": _bg_road,
    "tiles": _bg_tiles,
    "lava": _bg_lava,
    "forest": _bg_forest,
}
assert set(_BACKGROUNDS) == set(BACKGROUND_PHRASES)


def render_background(background: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """The scene alone as float32 HxWx3 in [0, 1]."""
    try:
        fn = _BACKGROUNDS[background]
    except KeyError:
        raise ValueError(f"unknown background {background!r}; choose from {sorted(_BACKGROUNDS)}") from None
    return np.clip(fn(rng, image_size), 0.0, 1.0).astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------ shapes
# Each shape is a list of (polygon, value) in unit coordinates (y down, inside the unit disc);
# value 255 adds, 0 cuts a hole (ring, crescent).
def _regular(k: int, r: float = 1.0, start: float = -90.0, cx: float = 0.0, cy: float = 0.0) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(math.radians(start + 360.0 * i / k)), cy + r * math.sin(math.radians(start + 360.0 * i / k))) for i in range(k)]


def _disc(r: float, cx: float = 0.0, cy: float = 0.0) -> list[tuple[float, float]]:
    return _regular(72, r, 0.0, cx, cy)


def _star() -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        r = 0.97 if i % 2 == 0 else 0.41
        a = math.radians(-90 + 36 * i)
        pts.append((r * math.cos(a), r * math.sin(a) + 0.05))
    return pts


def _heart() -> list[tuple[float, float]]:
    pts = []
    for i in range(48):
        t = 2 * math.pi * i / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        pts.append((x / 17.5, (y - 5.0) / 17.5))
    return pts


_A, _W = 0.95, 0.30
_SHAPES: dict[str, list[tuple[list[tuple[float, float]], int]]] = {
    "circle": [(_disc(0.9), 255)],
    "square": [([(-0.68, -0.68), (0.68, -0.68), (0.68, 0.68), (-0.68, 0.68)], 255)],
    "triangle": [([(0.0, -0.98), (0.92, 0.62), (-0.92, 0.62)], 255)],
    "star": [(_star(), 255)],
    "cross": [
        ([(-_W, -_A), (_W, -_A), (_W, -_W), (_A, -_W), (_A, _W), (_W, _W), (_W, _A), (-_W, _A), (-_W, _W), (-_A, _W), (-_A, -_W), (-_W, -_W)], 255)
    ],
    "heart": [(_heart(), 255)],
    "ring": [(_disc(0.95), 255), (_disc(0.52), 0)],
    "diamond": [([(0.0, -1.0), (0.6, 0.0), (0.0, 1.0), (-0.6, 0.0)], 255)],
    "arrow": [([(-0.95, -0.24), (0.12, -0.24), (0.12, -0.66), (0.97, 0.0), (0.12, 0.66), (0.12, 0.24), (-0.95, 0.24)], 255)],
    "crescent": [(_disc(0.95), 255), (_disc(0.78, 0.42, -0.18), 0)],
    "hexagon": [(_regular(6, 0.95, 0.0), 255)],
    "bolt": [([(0.22, -1.0), (-0.52, 0.12), (-0.04, 0.12), (-0.30, 1.0), (0.55, -0.20), (0.06, -0.20), (0.45, -1.0)], 255)],
}
assert set(_SHAPES) == set(SHAPES)


def shape_mask(
    shape: str, image_size: int, cx: float, cy: float, radius: float, angle: float = 0.0, supersample: int = 4, stretch: float = 1.0
) -> np.ndarray:
    """Anti-aliased coverage (float32 HxW in 0..1) of ``shape`` centred at (cx, cy) pixels inside
    a disc of ``radius`` pixels, stretched ``stretch`` x horizontally (and 1/``stretch`` x
    vertically, then shrunk to stay in the disc), rotated by ``angle`` degrees."""
    try:
        ops = _SHAPES[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; choose from {sorted(_SHAPES)}") from None
    k = supersample
    canvas = Image.new("L", (image_size * k, image_size * k), 0)
    draw = ImageDraw.Draw(canvas)
    ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    X, Y, R = cx * k, cy * k, radius * k / max(stretch, 1.0 / stretch)
    sx, sy = stretch, 1.0 / stretch
    for poly, value in ops:
        pts = [(X + R * (ca * px * sx - sa * py * sy), Y + R * (sa * px * sx + ca * py * sy)) for px, py in poly]
        draw.polygon(pts, fill=value)
    if k > 1:
        canvas = canvas.reduce(k)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _dilate(a: np.ndarray, px: int) -> np.ndarray:
    """Grow a coverage mask by ``px`` pixels (soft: diagonals count 0.7)."""
    out = a
    for _ in range(px):
        p = np.pad(out, 1, mode="constant")
        n = out.shape[0]
        side = np.maximum.reduce([p[0:n, 1 : n + 1], p[2 : n + 2, 1 : n + 1], p[1 : n + 1, 0:n], p[1 : n + 1, 2 : n + 2]])
        diag = np.maximum.reduce([p[0:n, 0:n], p[0:n, 2 : n + 2], p[2 : n + 2, 0:n], p[2 : n + 2, 2 : n + 2]])
        out = np.maximum.reduce([out, side, 0.7 * diag])
    return out


# ------------------------------------------------------------------------------------ render
def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def render_layers(
    attrs: ImageAttributes,
    image_size: int,
    rng: np.random.Generator,
    *,
    sizes: Mapping[str, tuple[float, float]] | None = None,
    supersample: int = 4,
    max_rotation: float = MAX_ROTATION,
    max_stretch: float = MAX_STRETCH,
) -> RenderLayers:
    """Render ``attrs`` and return the image with its layers (see :class:`RenderLayers`).

    The object's radius is drawn from ``sizes[attrs.size]`` (fractions of the side), its
    rotation from +-``max_rotation`` degrees, its aspect stretch from 1/``max_stretch``..``max_stretch``.
    """
    n = int(image_size)
    sizes = DEFAULT_SIZES if sizes is None else sizes
    if attrs.color not in COLOR_RGB:
        raise ValueError(f"unknown color {attrs.color!r}; choose from {sorted(COLOR_RGB)}")
    if attrs.size not in sizes:
        raise ValueError(f"unknown size {attrs.size!r}; choose from {sorted(sizes)}")
    if attrs.corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {attrs.corruption!r}; choose from {list(CORRUPTIONS)}")
    s_bg, s_obj, s_cor = (int(s) for s in rng.integers(0, 2**62, 3))
    bg = render_background(attrs.background, n, np.random.default_rng(s_bg))

    orng = np.random.default_rng(s_obj)
    lo, hi = sizes[attrs.size]
    radius = orng.uniform(lo, hi) * n
    angle = orng.uniform(-max_rotation, max_rotation)
    stretch = math.exp(orng.uniform(-1.0, 1.0) * math.log(max(1.0, max_stretch)))
    alpha = shape_mask(attrs.label, n, attrs.x * n, attrs.y * n, radius, angle, supersample, stretch)
    outline = _dilate(alpha, max(1, round(n / 64)))
    fill = _tint(orng, COLOR_RGB[attrs.color], 0.04)
    light = orng.uniform(0, 2 * math.pi)
    yy, xx = _grid(n)
    g = 0.5 + ((xx - attrs.x) * math.cos(light) + (yy - attrs.y) * math.sin(light)) * (n / (2.0 * radius))
    shade = (0.80 + 0.28 * np.clip(g, 0, 1))[..., None]

    ring = np.clip(outline - alpha, 0, 1)
    wsum = float(ring.sum())
    lum = float((bg @ _rgb(0.299, 0.587, 0.114) * ring).sum() / wsum) if wsum > 0 else 0.5
    line = _rgb(0.92, 0.92, 0.92) if lum < 0.3 else _rgb(0.06, 0.06, 0.06)

    o = outline[..., None]
    a = alpha[..., None]
    img = bg * (1 - o) + line * o
    img = img * (1 - a) + np.clip(fill * shade, 0, 1) * a

    if attrs.corruption == "noise":
        crng = np.random.default_rng(s_cor)
        img = img + crng.normal(0, crng.uniform(0.07, 0.11), img.shape).astype(np.float32)
    out = Image.fromarray(_to_uint8(img), "RGB")
    if attrs.corruption == "blur":
        crng = np.random.default_rng(s_cor)
        out = out.filter(ImageFilter.GaussianBlur(radius=crng.uniform(1.0, 1.4) * n / 64))
    return RenderLayers(image=out, background=_to_uint8(bg), alpha=alpha, outline=outline)


def render_image(attrs: ImageAttributes, size: int, rng: np.random.Generator, **kw: Any) -> Image.Image:
    """Render ``attrs`` as a ``size`` x ``size`` RGB PIL image, deterministically from ``rng``
    (keyword arguments: those of :func:`render_layers`)."""
    return render_layers(attrs, size, rng, **kw).image


def render(
    class_name: str,
    background: str,
    color: str,
    size: str = "large",
    x: float = 0.5,
    y: float = 0.5,
    corruption: str = "none",
    *,
    seed: int = 0,
    image_size: int = 64,
    **kw: Any,
) -> Image.Image:
    """One image, deterministically from ``seed``: e.g. ``render("star", "water", "yellow", seed=3)``.

    The same seed keeps the object (rotation, radius, shading, colour jitter) when only the
    background changes.
    """
    attrs = ImageAttributes(label=class_name, background=background, color=color, size=size, x=x, y=y, corruption=corruption)
    return render_image(attrs, image_size, np.random.default_rng(seed), **kw)


def contact_sheet(images: Sequence[Image.Image], cols: int, pad: int = 2, scale: int = 1, fill: tuple[int, int, int] = (40, 40, 40)) -> Image.Image:
    """A grid of images (row-major), ``pad`` pixels apart, each enlarged ``scale`` x (nearest)."""
    if not images:
        raise ValueError("no images for the contact sheet")
    w, h = images[0].size
    w, h = w * scale, h * scale
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), fill)
    for i, im in enumerate(images):
        if scale != 1:
            im = im.resize((w, h), Image.NEAREST)
        r, c = divmod(i, cols)
        sheet.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    return sheet
