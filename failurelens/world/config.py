"""Configuration of the benchmark world: a JSON file loaded and checked into dataclasses.

The world is a set of procedurally rendered images (a shape = the class, on a textured scene,
in a named colour) with *planted failure modes*: in the biased splits (``train``, ``val``,
``test`` - the deployment distribution) every class sits on its *dominant background* most of
the time, some classes also have a *dominant colour*, and the planted slices (class x rare
attribute value) occur at exactly the configured fraction of the class. ``balanced`` samples
every attribute uniformly and independently.

JSON layout (see ``default_world.json``)::

    {
      "seed": 0, "image_size": 64, "supersample": 4,
      "classes": ["circle", ...],
      "backgrounds": ["grass", ...],
      "colors": ["red", ...],
      "sizes": {"small": [0.13, 0.17], "large": [0.24, 0.29]},   # object radius / image side
      "max_rotation": 180, "max_stretch": 1.25,       # shape pose jitter (defaults 15 and 1 = none)
      "corruption": {"blur": 0.08, "noise": 0.08},    # the rest is "none"
      "splits": {"train": 7200, "val": 6000, "test": 6000, "balanced": 6000},
      "biased_splits": ["train", "val", "test"],      # default: those of train/val/test present
      "dominant_fraction": 0.93,                      # default of the bias entries' fractions
      "bias": {"circle": {"background": "grass"},
               "heart":  {"background": "wood", "color": "red", "color_fraction": 0.93}, ...},
      "planted_slices": [{"name": "star_on_water", "class": "star", "attribute": "background",
                          "value": "water", "fraction": 0.05}, ...]
    }

Class names must be shapes the renderer draws (:data:`SHAPES`), backgrounds scenes it draws
(:data:`BACKGROUND_PHRASES`), colours named colours (:data:`COLOR_RGB`).

Within a class of a biased split, an attribute's distribution is: the dominant value at its
fraction, each planted value at its fraction, the remaining mass spread uniformly over the other
values (no dominant value: everything not planted shares the rest uniformly). Fractions are of
the class's images in that split. :func:`attribute_distribution` computes it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from failurelens.data.errors import ValidationError, Violation

__all__ = [
    "ATTRIBUTES",
    "BACKGROUND_PHRASES",
    "COLOR_RGB",
    "CORRUPTIONS",
    "DEFAULT_CONFIG_PATH",
    "SHAPES",
    "ClassBias",
    "PlantedSlice",
    "WorldConfig",
    "WorldConfigError",
    "attribute_distribution",
    "config_from_dict",
    "default_config",
    "load_config",
]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_world.json")

#: shapes the renderer can draw (a class name must be one of them)
SHAPES = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "heart",
    "ring",
    "diamond",
    "arrow",
    "crescent",
    "hexagon",
    "bolt",
)
#: scenes the renderer can draw, with the phrase captions use
BACKGROUND_PHRASES: dict[str, str] = {
    "grass": "on grass",
    "water": "in water",
    "sand": "on sand",
    "snow": "on snow",
    "sky": "in the sky",
    "brick": "on brick",
    "wood": "on wood",
    "night": "at night",
    "road": "on the road",
    "tiles": "on tiles",
    "lava": "on lava",
    "forest": "in the forest",
}
#: named object colours (linear 0..1 sRGB values before per-image jitter and shading)
COLOR_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.93, 0.08, 0.08),
    "orange": (1.00, 0.52, 0.00),
    "yellow": (1.00, 0.92, 0.10),
    "green": (0.10, 0.85, 0.22),
    "blue": (0.12, 0.22, 0.98),
    "purple": (0.58, 0.16, 0.86),
    "pink": (1.00, 0.45, 0.76),
    "white": (0.99, 0.99, 0.99),
    "black": (0.05, 0.05, 0.05),
    "cyan": (0.10, 0.90, 0.95),
}
#: corruption values; "none" gets the probability mass the config leaves over
CORRUPTIONS = ("none", "blur", "noise")
#: attributes a planted slice may be defined on
ATTRIBUTES = ("background", "color")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SPLIT_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


class WorldConfigError(ValidationError):
    """The world configuration is unusable; ``violations`` lists every problem found."""


@dataclasses.dataclass(frozen=True)
class PlantedSlice:
    """``class_name`` x (``attribute`` = ``value``) at ``fraction`` of the class in biased splits."""

    name: str
    class_name: str
    attribute: str  # "background" | "color"
    value: str
    fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "class": self.class_name, "attribute": self.attribute, "value": self.value, "fraction": self.fraction}

    @property
    def description(self) -> str:
        if self.attribute == "background":
            return f"{self.class_name} {BACKGROUND_PHRASES.get(self.value, 'on ' + self.value)}"
        return f"{self.value} {self.class_name}"


@dataclasses.dataclass(frozen=True)
class ClassBias:
    """A class's dominant background (required) and dominant colour (optional) in biased splits."""

    background: str
    background_fraction: float
    color: str | None = None
    color_fraction: float = 0.0

    def dominant(self, attribute: str) -> tuple[str | None, float]:
        if attribute == "background":
            return self.background, self.background_fraction
        if attribute == "color":
            return self.color, self.color_fraction
        raise KeyError(attribute)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"background": self.background, "background_fraction": self.background_fraction}
        if self.color is not None:
            d.update(color=self.color, color_fraction=self.color_fraction)
        return d


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    seed: int
    image_size: int
    supersample: int
    classes: tuple[str, ...]
    backgrounds: tuple[str, ...]
    colors: tuple[str, ...]
    sizes: dict[str, tuple[float, float]]  # name -> (min, max) object radius / image side
    max_rotation: float  # degrees, either way
    max_stretch: float  # aspect jitter: stretch in 1/max..max (1 = none)
    corruption: dict[str, float]  # "blur"/"noise" -> probability
    splits: dict[str, int]  # name -> number of images (ordered)
    biased_splits: tuple[str, ...]
    bias: dict[str, ClassBias]
    planted_slices: tuple[PlantedSlice, ...]

    # ---------------------------------------------------------------------------- helpers
    def with_seed(self, seed: int) -> WorldConfig:
        return dataclasses.replace(self, seed=int(seed))

    def with_splits(self, splits: Mapping[str, int]) -> WorldConfig:
        """A copy with other split sizes (biased splits that disappear are dropped); re-validated."""
        d = self.to_dict()
        d["splits"] = dict(splits)
        d["biased_splits"] = [s for s in self.biased_splits if s in splits]
        return config_from_dict(d)

    def is_biased(self, split: str) -> bool:
        return split in self.biased_splits

    def slice(self, name: str) -> PlantedSlice:
        for s in self.planted_slices:
            if s.name == name:
                return s
        raise KeyError(f"no planted slice {name!r}; the slices are {[s.name for s in self.planted_slices]}")

    def slices_of(self, class_name: str, attribute: str | None = None) -> list[PlantedSlice]:
        return [s for s in self.planted_slices if s.class_name == class_name and (attribute is None or s.attribute == attribute)]

    def values(self, attribute: str) -> tuple[str, ...]:
        if attribute == "background":
            return self.backgrounds
        if attribute == "color":
            return self.colors
        raise KeyError(attribute)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "image_size": self.image_size,
            "supersample": self.supersample,
            "classes": list(self.classes),
            "backgrounds": list(self.backgrounds),
            "colors": list(self.colors),
            "sizes": {k: list(v) for k, v in self.sizes.items()},
            "max_rotation": self.max_rotation,
            "max_stretch": self.max_stretch,
            "corruption": dict(self.corruption),
            "splits": dict(self.splits),
            "biased_splits": list(self.biased_splits),
            "bias": {c: b.to_dict() for c, b in self.bias.items()},
            "planted_slices": [s.to_dict() for s in self.planted_slices],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ------------------------------------------------------------------------------ distribution
def attribute_distribution(config: WorldConfig, class_name: str, attribute: str, biased: bool) -> dict[str, float]:
    """Probability of each value of ``attribute`` (``background``/``color``) within ``class_name``.

    Unbiased (``balanced``): uniform. Biased: dominant value at its fraction, planted values at
    theirs, the rest spread uniformly over the remaining values.
    """
    values = config.values(attribute)
    if not biased:
        return {v: 1.0 / len(values) for v in values}
    dom, dom_frac = config.bias[class_name].dominant(attribute)
    fixed: dict[str, float] = {}
    if dom is not None:
        fixed[dom] = dom_frac
    for s in config.slices_of(class_name, attribute):
        fixed[s.value] = s.fraction
    rest = [v for v in values if v not in fixed]
    left = max(0.0, 1.0 - sum(fixed.values()))
    out = {}
    for v in values:
        out[v] = fixed[v] if v in fixed else (left / len(rest))
    return out


# -------------------------------------------------------------------------------- loading
def default_config() -> WorldConfig:
    """The default world (``default_world.json`` beside this module)."""
    return load_config(DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike[str] | None = None) -> WorldConfig:
    """Load and validate a world config JSON file (``None``: the default world)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorldConfigError(f"world config {p} does not exist") from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise WorldConfigError(f"world config {p} is not valid JSON: {e}") from None
    try:
        return config_from_dict(obj)
    except WorldConfigError as e:
        raise WorldConfigError(f"{p}: {e.message}", e.violations, violation_count=e.violation_count) from None


class _Errors:
    def __init__(self) -> None:
        self.items: list[Violation] = []

    def add(self, field: str, msg: str) -> None:
        self.items.append(Violation(field=field, description=msg))

    def raise_if_any(self) -> None:
        if self.items:
            lines = "; ".join(v.description for v in self.items[:8])
            more = f" (and {len(self.items) - 8} more)" if len(self.items) > 8 else ""
            raise WorldConfigError(f"invalid world config: {len(self.items)} problem(s): {lines}{more}", self.items)


def _is_fraction(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0.0 < float(v) <= 1.0


def _names(obj: Any, key: str, errs: _Errors, allowed: Mapping[str, Any] | tuple[str, ...], min_count: int) -> tuple[str, ...]:
    if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
        errs.add(key, f"{key} must be a list of names, got {obj!r}")
        return ()
    out = []
    for x in obj:
        if x not in allowed:
            errs.add(key, f"{key}: {x!r} is not known to the renderer; choose from {sorted(allowed)}")
        elif x in out:
            errs.add(key, f"{key}: {x!r} is listed twice")
        else:
            out.append(x)
    if len(obj) < min_count:
        errs.add(key, f"{key} needs at least {min_count} entries, got {len(obj)}")
    return tuple(out)


_TOP_KEYS = {
    "seed",
    "image_size",
    "supersample",
    "max_rotation",
    "max_stretch",
    "classes",
    "backgrounds",
    "colors",
    "sizes",
    "corruption",
    "splits",
    "biased_splits",
    "dominant_fraction",
    "bias",
    "planted_slices",
    "description",
    "notes",
}


def config_from_dict(obj: Any) -> WorldConfig:
    """Validate a parsed JSON object into a :class:`WorldConfig`; :class:`WorldConfigError` lists
    every problem (unknown names, fractions out of range or summing over 1, planted value equal
    to the dominant one, ...)."""
    errs = _Errors()
    if not isinstance(obj, dict):
        raise WorldConfigError(f"a world config is a JSON object, not {type(obj).__name__}")
    unknown = sorted(set(obj) - _TOP_KEYS)
    if unknown:
        errs.add("config", f"unknown key(s) {unknown}; known keys are {sorted(_TOP_KEYS)}")

    seed = obj.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        errs.add("seed", f"seed must be a non-negative integer, got {seed!r}")
        seed = 0
    image_size = obj.get("image_size", 64)
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 16 <= image_size <= 1024:
        errs.add("image_size", f"image_size must be an integer in 16..1024, got {image_size!r}")
        image_size = 64
    supersample = obj.get("supersample", 4)
    if not isinstance(supersample, int) or isinstance(supersample, bool) or not 1 <= supersample <= 8:
        errs.add("supersample", f"supersample must be an integer in 1..8, got {supersample!r}")
        supersample = 4

    classes = _names(obj.get("classes"), "classes", errs, SHAPES, 2)
    backgrounds = _names(obj.get("backgrounds"), "backgrounds", errs, BACKGROUND_PHRASES, 2)
    colors = _names(obj.get("colors"), "colors", errs, COLOR_RGB, 2)

    # sizes
    sizes: dict[str, tuple[float, float]] = {}
    raw_sizes = obj.get("sizes", {"small": [0.13, 0.17], "large": [0.24, 0.29]})
    if not isinstance(raw_sizes, dict) or not raw_sizes:
        errs.add("sizes", f"sizes must be an object name -> [min_radius, max_radius], got {raw_sizes!r}")
    else:
        for k, v in raw_sizes.items():
            ok = (
                isinstance(v, list)
                and len(v) == 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
                and 0.03 <= v[0] <= v[1] <= 0.45
            )
            if not _NAME_RE.match(k):
                errs.add("sizes", f"size name {k!r} must be a simple word")
            elif not ok:
                errs.add(
                    "sizes", f"sizes.{k} must be [min_radius, max_radius] with 0.03 <= min <= max <= 0.45 (fractions of the image side), got {v!r}"
                )
            else:
                sizes[k] = (float(v[0]), float(v[1]))

    max_rotation = obj.get("max_rotation", 15.0)
    if not isinstance(max_rotation, (int, float)) or isinstance(max_rotation, bool) or not 0 <= max_rotation <= 180:
        errs.add("max_rotation", f"max_rotation must be a number of degrees in [0, 180], got {max_rotation!r}")
        max_rotation = 15.0
    max_stretch = obj.get("max_stretch", 1.0)
    if not isinstance(max_stretch, (int, float)) or isinstance(max_stretch, bool) or not 1.0 <= max_stretch <= 2.0:
        errs.add("max_stretch", f"max_stretch must be in [1, 2] (1 = no aspect jitter), got {max_stretch!r}")
        max_stretch = 1.0

    # corruption
    corruption: dict[str, float] = {}
    raw_corr = obj.get("corruption", {})
    if not isinstance(raw_corr, dict):
        errs.add("corruption", f'corruption must be an object like {{"blur": 0.1, "noise": 0.1}}, got {raw_corr!r}')
    else:
        for k, v in raw_corr.items():
            if k not in CORRUPTIONS or k == "none":
                errs.add("corruption", f"corruption {k!r} is unknown; use 'blur' and/or 'noise' ('none' takes the rest)")
            elif not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                errs.add("corruption", f"corruption.{k} must be a probability in [0, 1], got {v!r}")
            else:
                corruption[k] = float(v)
        if sum(corruption.values()) > 1.0 + 1e-9:
            errs.add("corruption", f"corruption probabilities sum to {sum(corruption.values()):.3f} > 1")

    # splits
    splits: dict[str, int] = {}
    raw_splits = obj.get("splits")
    if not isinstance(raw_splits, dict) or not raw_splits:
        errs.add("splits", f"splits must be an object split name -> number of images, got {raw_splits!r}")
    else:
        for k, v in raw_splits.items():
            if not isinstance(k, str) or not _SPLIT_RE.match(k):
                errs.add("splits", f"split name {k!r} must be lower-case letters, digits, '_' or '-'")
            elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
                errs.add("splits", f"splits.{k} must be a non-negative integer, got {v!r}")
            else:
                splits[k] = v
    raw_biased = obj.get("biased_splits", [s for s in ("train", "val", "test") if s in splits])
    biased: list[str] = []
    if not isinstance(raw_biased, list) or not all(isinstance(s, str) for s in raw_biased):
        errs.add("biased_splits", f"biased_splits must be a list of split names, got {raw_biased!r}")
    else:
        for s in raw_biased:
            if s not in splits:
                errs.add("biased_splits", f"biased split {s!r} is not in splits {sorted(splits)}")
            elif s not in biased:
                biased.append(s)

    # bias
    default_frac = obj.get("dominant_fraction", 0.9)
    if not _is_fraction(default_frac):
        errs.add("dominant_fraction", f"dominant_fraction must be in (0, 1], got {default_frac!r}")
        default_frac = 0.9
    bias: dict[str, ClassBias] = {}
    raw_bias = obj.get("bias")
    if not isinstance(raw_bias, dict):
        errs.add("bias", f'bias must be an object class -> {{"background": ..., ["color": ...]}}, got {raw_bias!r}')
        raw_bias = {}
    for c in raw_bias:
        if c not in classes:
            errs.add(f"bias.{c}", f"bias names class {c!r}, which is not in classes {list(classes)}")
    for c in classes:
        b = raw_bias.get(c)
        if b is None:
            errs.add(
                f"bias.{c}", f'class {c!r} has no bias entry; every class needs a dominant background ("bias": {{"{c}": {{"background": ...}}}})'
            )
            continue
        if not isinstance(b, dict):
            errs.add(f"bias.{c}", f"bias.{c} must be an object, got {b!r}")
            continue
        extra = sorted(set(b) - {"background", "background_fraction", "color", "color_fraction"})
        if extra:
            errs.add(f"bias.{c}", f"bias.{c} has unknown key(s) {extra}")
        bg = b.get("background")
        if bg not in backgrounds:
            errs.add(f"bias.{c}.background", f"bias.{c}.background {bg!r} is not one of the backgrounds {list(backgrounds)}")
            continue
        bgf = b.get("background_fraction", default_frac)
        if not _is_fraction(bgf):
            errs.add(f"bias.{c}.background_fraction", f"bias.{c}.background_fraction must be in (0, 1], got {bgf!r}")
            bgf = default_frac
        col = b.get("color")
        colf = 0.0
        if col is not None:
            if col not in colors:
                errs.add(f"bias.{c}.color", f"bias.{c}.color {col!r} is not one of the colors {list(colors)}")
                col = None
            else:
                colf = b.get("color_fraction", default_frac)
                if not _is_fraction(colf):
                    errs.add(f"bias.{c}.color_fraction", f"bias.{c}.color_fraction must be in (0, 1], got {colf!r}")
                    colf = default_frac
        elif "color_fraction" in b:
            errs.add(f"bias.{c}.color_fraction", f"bias.{c} has color_fraction but no color")
        bias[c] = ClassBias(background=bg, background_fraction=float(bgf), color=col, color_fraction=float(colf))

    # planted slices
    planted: list[PlantedSlice] = []
    raw_planted = obj.get("planted_slices", [])
    if not isinstance(raw_planted, list):
        errs.add("planted_slices", f"planted_slices must be a list, got {raw_planted!r}")
        raw_planted = []
    seen_names: set[str] = set()
    seen_keys: dict[tuple[str, str, str], str] = {}
    for i, s in enumerate(raw_planted):
        where = f"planted_slices[{i}]"
        if not isinstance(s, dict):
            errs.add(where, f"{where} must be an object, got {s!r}")
            continue
        extra = sorted(set(s) - {"name", "class", "attribute", "value", "fraction"})
        if extra:
            errs.add(where, f"{where} has unknown key(s) {extra}")
        name, cls, attr, val, frac = (s.get(k) for k in ("name", "class", "attribute", "value", "fraction"))
        if isinstance(name, str) and name:
            where = f"planted slice {name!r}"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            errs.add(where, f"{where}: name must be a simple identifier (letters, digits, _ . -), got {name!r}")
            continue
        if name in seen_names:
            errs.add(where, f"{where}: the name is used twice")
            continue
        seen_names.add(name)
        if cls not in classes:
            errs.add(where, f"{where}: class {cls!r} is not one of the classes {list(classes)}")
            continue
        if attr not in ATTRIBUTES:
            errs.add(where, f"{where}: attribute {attr!r} must be one of {list(ATTRIBUTES)}")
            continue
        allowed = backgrounds if attr == "background" else colors
        if val not in allowed:
            errs.add(where, f"{where}: {attr} {val!r} is not one of {list(allowed)}")
            continue
        if not _is_fraction(frac) or frac >= 1.0:
            errs.add(where, f"{where}: fraction must be in (0, 1), got {frac!r}")
            continue
        key = (cls, attr, val)
        if key in seen_keys:
            errs.add(where, f"{where}: same class/attribute/value as planted slice {seen_keys[key]!r}")
            continue
        seen_keys[key] = name
        b = bias.get(cls)
        if b is not None:
            dom, _ = b.dominant(attr)
            if dom == val:
                errs.add(where, f"{where}: {attr} {val!r} is the dominant {attr} of class {cls!r}; a planted slice must be a rare value")
                continue
        planted.append(PlantedSlice(name=name, class_name=cls, attribute=attr, value=val, fraction=float(frac)))

    # per class and attribute: dominant + planted must fit into 1, and leave room for the rest
    for c in classes:
        b = bias.get(c)
        for attr in ATTRIBUTES:
            values = backgrounds if attr == "background" else colors
            dom, dom_frac = b.dominant(attr) if b is not None else (None, 0.0)
            ps = [p for p in planted if p.class_name == c and p.attribute == attr]
            total = (dom_frac if dom is not None else 0.0) + sum(p.fraction for p in ps)
            if total > 1.0 + 1e-9:
                parts = ([f"dominant {dom} {dom_frac:g}"] if dom is not None else []) + [f"{p.name} {p.fraction:g}" for p in ps]
                errs.add(f"bias.{c}", f"class {c!r}: {attr} fractions sum to {total:.3f} > 1 ({' + '.join(parts)})")
                continue
            n_fixed = (dom is not None) + len(ps)
            if n_fixed >= len(values) and total < 1.0 - 1e-9:
                errs.add(f"bias.{c}", f"class {c!r}: {attr} fractions sum to {total:.3f} < 1 but no other {attr} value is left to take the rest")
    errs.raise_if_any()
    return WorldConfig(
        seed=int(seed),
        image_size=int(image_size),
        supersample=int(supersample),
        classes=classes,
        backgrounds=backgrounds,
        colors=colors,
        sizes=sizes,
        max_rotation=float(max_rotation),
        max_stretch=float(max_stretch),
        corruption=corruption,
        splits=splits,
        biased_splits=tuple(biased),
        bias=bias,
        planted_slices=tuple(planted),
    )
