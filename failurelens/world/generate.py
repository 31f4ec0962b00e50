"""Generate the benchmark world: plan every image's attributes by exact quotas, render, write.

Layout written by :func:`generate_world`::

    out_dir/images/<split>/<class>/<index>.png
    out_dir/manifest.csv     uri,label,split,background,color,size,x,y,corruption,caption,planted_slice
    out_dir/classes.txt      one class name per line (label-index order)
    out_dir/world.json       the resolved config, the planted slices with their counts per split,
                             measured attribute frequencies

``uri`` is relative to ``out_dir``; ``label`` is the class name; ``x``/``y`` the object's centre
as fractions of the image side; ``planted_slice`` names the planted slices the image belongs to
(``;``-separated, empty when none; in biased splits an image is in at most one).

Determinism: the plan of a split comes from a generator seeded with (seed, split); each image is
rendered from its own generator seeded with (seed, split, index), so the output does not depend
on ``workers`` or on the order images are rendered in; PNGs carry no metadata.

Exact frequencies: within each class of a split, every attribute list is built from the target
distribution by largest-remainder rounding and then shuffled, so a planted slice at fraction f
of a class with m images has exactly round(f * m) images (to within one image).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import ATTRIBUTES, PlantedSlice, WorldConfig, attribute_distribution
from .render import ImageAttributes, caption, contact_sheet, render_image

__all__ = [
    "MANIFEST_COLUMNS",
    "WorldManifest",
    "generate_world",
    "image_rng",
    "load_world",
    "measure_frequencies",
    "plan_split",
    "plan_world",
    "planted_slice_mask",
    "quota",
    "render_kwargs",
]

MANIFEST_COLUMNS = ("uri", "label", "split", "background", "color", "size", "x", "y", "corruption", "caption", "planted_slice")
WORLD_FORMAT = "failurelens-world/1"
#: margin (fraction of the side) kept between the object's bounding circle and the image border
EDGE_MARGIN = 0.05

ProgressFn = Callable[[int, int], None]


# ------------------------------------------------------------------------------------ seeds
def _split_key(split: str) -> int:
    return zlib.crc32(split.encode("utf-8"))


def _split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _split_key(split), 0]))


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator image ``index`` of ``split`` is rendered from."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _split_key(split), 1, int(index)]))


# ----------------------------------------------------------------------------------- quotas
def quota(probs: Sequence[float], n: int) -> np.ndarray:
    """Split ``n`` items into counts proportional to ``probs`` (largest-remainder rounding; ties
    go to the earlier entry). Counts sum to ``n`` and each is within 1 of ``p * n``."""
    p = np.asarray(probs, dtype=np.float64)
    if n == 0 or p.sum() <= 0:
        return np.zeros(len(p), dtype=np.int64)
    raw = np.round(p / p.sum() * n, 9)
    base = np.floor(raw).astype(np.int64)
    rem = int(n - base.sum())
    if rem > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:rem]] += 1
    return base


def _expand(values: Sequence[str], counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=object), counts)


def _quota_list(rng: np.random.Generator, dist: Mapping[str, float], n: int) -> np.ndarray:
    values = list(dist)
    out = _expand(values, quota([dist[v] for v in values], n))
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------------- plan
def plan_split(config: WorldConfig, split: str) -> pd.DataFrame:
    """The rows (attributes, uris, captions) of one split, without rendering."""
    n = config.splits[split]
    biased = config.is_biased(split)
    rng = _split_rng(config.seed, split)
    classes = list(config.classes)
    per_class = quota([1.0] * len(classes), n)
    size_names = list(config.sizes)
    corr = {"none": max(0.0, 1.0 - sum(config.corruption.values())), **config.corruption}
    cols: dict[str, list[Any]] = {k: [] for k in ("label", "background", "color", "size", "x", "y", "corruption")}
    for cls, m in zip(classes, per_class):
        m = int(m)
        bgs = _quota_list(rng, attribute_distribution(config, cls, "background", biased), m)
        colors = _quota_list(rng, attribute_distribution(config, cls, "color", biased), m)
        if biased:
            _separate_planted(rng, config, cls, bgs, colors)
        sizes = _quota_list(rng, {s: 1.0 for s in size_names}, m)
        corrs = _quota_list(rng, corr, m)
        u = rng.random((m, 2))
        for i in range(m):
            lo = config.sizes[sizes[i]][1] + EDGE_MARGIN
            cols["x"].append(round(lo + (1 - 2 * lo) * float(u[i, 0]), 3))
            cols["y"].append(round(lo + (1 - 2 * lo) * float(u[i, 1]), 3))
        cols["label"] += [cls] * m
        cols["background"] += list(bgs)
        cols["color"] += list(colors)
        cols["size"] += list(sizes)
        cols["corruption"] += list(corrs)
    order = rng.permutation(n)
    df = pd.DataFrame({k: np.asarray(v, dtype=object if k not in ("x", "y") else np.float64)[order] if n else v for k, v in cols.items()})
    df.insert(0, "split", split)
    df.insert(0, "uri", [f"images/{split}/{lab}/{i:05d}.png" for i, lab in enumerate(df["label"])])
    df["caption"] = [caption(_attrs(r)) for r in df.itertuples(index=False)]
    df["planted_slice"] = _slice_names(config, df)
    df = df[list(MANIFEST_COLUMNS[:2]) + ["split"] + list(MANIFEST_COLUMNS[3:])]
    return df.reset_index(drop=True)


def _separate_planted(rng: np.random.Generator, config: WorldConfig, cls: str, bgs: np.ndarray, colors: np.ndarray) -> None:
    """Swap colours (in place; the colour counts stay) so that no image of a biased split is in a
    background slice and a colour slice at once."""
    pbg = {s.value for s in config.slices_of(cls, "background")}
    pcol = {s.value for s in config.slices_of(cls, "color")}
    if not pbg or not pcol:
        return
    in_bg = np.isin(bgs, list(pbg))
    in_col = np.isin(colors, list(pcol))
    clash = np.flatnonzero(in_bg & in_col)
    free = np.flatnonzero(~in_bg & ~in_col)
    if len(clash) == 0:
        return
    if len(free) < len(clash):  # pragma: no cover - needs planted fractions near 0.5
        raise ValueError(f"class {cls!r}: planted slices are too large to be kept disjoint")
    pick = rng.choice(free, size=len(clash), replace=False)
    colors[clash], colors[pick] = colors[pick].copy(), colors[clash].copy()


def _attrs(row: Any) -> ImageAttributes:
    return ImageAttributes(
        label=row.label, background=row.background, color=row.color, size=row.size, x=float(row.x), y=float(row.y), corruption=row.corruption
    )


def _slice_names(config: WorldConfig, df: pd.DataFrame) -> list[str]:
    names = [""] * len(df)
    for s in config.planted_slices:
        for i in np.flatnonzero(planted_slice_mask(df, s)):
            names[i] = s.name if not names[i] else names[i] + ";" + s.name
    return names


def plan_world(config: WorldConfig) -> pd.DataFrame:
    """The manifest of the whole world (every split, in config order), without rendering."""
    parts = [plan_split(config, s) for s in config.splits]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(MANIFEST_COLUMNS))


# ------------------------------------------------------------------------------------ masks
def planted_slice_mask(df: pd.DataFrame, slice: PlantedSlice | Mapping[str, Any], class_names: Sequence[str] | None = None) -> np.ndarray:
    """Boolean mask of the rows of ``df`` (a world manifest) in ``slice``: label == class and
    attribute == value. Labels may be class names or, with ``class_names``, indices (e.g. after
    :func:`failurelens.data.manifest.validate_manifest`)."""
    if isinstance(slice, Mapping):
        cls, attr, value = slice["class"], slice["attribute"], slice["value"]
    else:
        cls, attr, value = slice.class_name, slice.attribute, slice.value
    if attr not in ATTRIBUTES:
        raise ValueError(f"slice attribute {attr!r} must be one of {list(ATTRIBUTES)}")
    labels = df["label"]
    if pd.api.types.is_integer_dtype(labels.dtype):
        if class_names is None:
            raise ValueError("the manifest's labels are class indices; pass class_names")
        labels_match = labels.to_numpy() == list(class_names).index(cls)
    else:
        labels_match = labels.astype(str).to_numpy() == cls
    return labels_match & (df[attr].astype(str).to_numpy() == value)


# ----------------------------------------------------------------------------- frequencies
def measure_frequencies(config: WorldConfig, df: pd.DataFrame) -> dict[str, Any]:
    """Measured frequencies per split: for each planted slice its count and fraction of its class,
    for each class the fraction of its dominant background / colour."""
    out: dict[str, Any] = {"planted_slices": {}, "dominant": {}, "split_counts": {}}
    for split in config.splits:
        sdf = df[df["split"] == split]
        out["split_counts"][split] = int(len(sdf))
        class_counts = sdf["label"].value_counts()
        for s in config.planted_slices:
            m = int(class_counts.get(s.class_name, 0))
            c = int(planted_slice_mask(sdf, s).sum())
            out["planted_slices"].setdefault(s.name, {})[split] = {"count": c, "class_count": m, "fraction": round(c / m, 6) if m else 0.0}
        dom: dict[str, Any] = {}
        for cls in config.classes:
            cdf = sdf[sdf["label"] == cls]
            m = len(cdf)
            b = config.bias[cls]
            d = {
                "class_count": m,
                "background": b.background,
                "background_fraction": round(float((cdf["background"] == b.background).mean()), 6) if m else 0.0,
            }
            if b.color is not None:
                d["color"] = b.color
                d["color_fraction"] = round(float((cdf["color"] == b.color).mean()), 6) if m else 0.0
            dom[cls] = d
        out["dominant"][split] = dom
    return out


# ---------------------------------------------------------------------------------- writing
@dataclasses.dataclass
class WorldManifest:
    """A generated world: ``df`` is the manifest (labels as class names), paths under ``out_dir``."""

    out_dir: Path
    df: pd.DataFrame
    class_names: list[str]
    config: WorldConfig
    frequencies: dict[str, Any]

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.csv"

    @property
    def classes_path(self) -> Path:
        return self.out_dir / "classes.txt"

    @property
    def world_json_path(self) -> Path:
        return self.out_dir / "world.json"

    def split(self, name: str) -> pd.DataFrame:
        return self.df[self.df["split"] == name]

    def slice_mask(self, name: str, split: str | None = None) -> np.ndarray:
        """Mask over ``df`` (or over ``split(split)``) of the planted slice ``name``."""
        s = self.config.slice(name)
        return planted_slice_mask(self.df if split is None else self.split(split), s)

    def image_path(self, row: int) -> Path:
        return self.out_dir / str(self.df["uri"].iloc[row])


def _default_start_method() -> str:
    import threading

    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


def render_kwargs(config: WorldConfig) -> dict[str, Any]:
    """Keyword arguments of :func:`render_image` / :func:`render` that reproduce ``config``'s look."""
    return {"sizes": dict(config.sizes), "supersample": config.supersample, "max_rotation": config.max_rotation, "max_stretch": config.max_stretch}


def _render_chunk(args: tuple[str, int, int, dict[str, Any], list[tuple[Any, ...]]]) -> int:
    out_dir, seed, image_size, kw, rows = args
    for uri, split, index, label, background, color, size, x, y, corruption in rows:
        attrs = ImageAttributes(label=label, background=background, color=color, size=size, x=x, y=y, corruption=corruption)
        im = render_image(attrs, image_size, image_rng(seed, split, index), **kw)
        im.save(os.path.join(out_dir, uri), format="PNG", compress_level=1)
    return len(rows)


_WORLD_FILES = ("manifest.csv", "classes.txt", "world.json")


def _prepare_out_dir(out: Path) -> None:
    """Create ``out``; a previous world in it is removed, any other content is refused."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "world.json").is_file():
            raise FileExistsError(f"{out} is not empty and holds no generated world (world.json); choose an empty or new folder")
        import shutil

        shutil.rmtree(out / "images", ignore_errors=True)
        for name in _WORLD_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def generate_world(
    config: WorldConfig,
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    progress: ProgressFn | None = None,
    chunk_size: int = 256,
    start_method: str | None = None,
) -> WorldManifest:
    """Render every split of ``config`` into ``out_dir`` (see the module doc for the layout).

    ``out_dir`` must be new, empty, or hold an earlier world, which is replaced.

    ``workers`` > 1 renders in that many processes (the output is byte-identical either way);
    ``progress(done, total)`` is called as images are written. ``start_method`` picks the
    multiprocessing start method; by default ``fork`` where available and only one Python thread
    runs, else ``spawn``.
    """
    out = Path(out_dir)
    _prepare_out_dir(out)
    df = plan_world(config)
    for split in config.splits:
        for cls in config.classes:
            (out / "images" / split / cls).mkdir(parents=True, exist_ok=True)
    index_in_split = df.groupby("split", sort=False).cumcount().to_numpy()
    rows = [
        (r.uri, r.split, int(i), r.label, r.background, r.color, r.size, float(r.x), float(r.y), r.corruption)
        for r, i in zip(df.itertuples(index=False), index_in_split)
    ]
    total = len(rows)
    kw = render_kwargs(config)
    chunks = [(str(out), config.seed, config.image_size, kw, rows[i : i + chunk_size]) for i in range(0, total, chunk_size)]
    done = 0
    if progress is not None:
        progress(0, total)
    if workers <= 1 or len(chunks) <= 1:
        for ch in chunks:
            done += _render_chunk(ch)
            if progress is not None:
                progress(done, total)
    else:
        ctx = multiprocessing.get_context(start_method or _default_start_method())
        with cf.ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx) as pool:
            for n in pool.map(_render_chunk, chunks):
                done += n
                if progress is not None:
                    progress(done, total)

    freqs = measure_frequencies(config, df)
    df.to_csv(out / "manifest.csv", index=False, lineterminator="\n", float_format="%.3f")
    (out / "classes.txt").write_text("".join(c + "\n" for c in config.classes), encoding="utf-8")
    world = {
        "format": WORLD_FORMAT,
        "config": config.to_dict(),
        "planted_slices": [{**s.to_dict(), "description": s.description, "counts": freqs["planted_slices"][s.name]} for s in config.planted_slices],
        "frequencies": freqs,
        "manifest_columns": list(MANIFEST_COLUMNS),
    }
    (out / "world.json").write_text(json.dumps(world, indent=2) + "\n", encoding="utf-8")
    return WorldManifest(out_dir=out, df=df, class_names=list(config.classes), config=config, frequencies=freqs)


def load_world(out_dir: str | os.PathLike[str]) -> WorldManifest:
    """Read a world written by :func:`generate_world` (manifest.csv + world.json)."""
    from .config import config_from_dict

    out = Path(out_dir)
    world = json.loads((out / "world.json").read_text(encoding="utf-8"))
    if world.get("format") != WORLD_FORMAT:
        raise ValueError(f"{out / 'world.json'} is not a {WORLD_FORMAT} file")
    config = config_from_dict(world["config"])
    df = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    df["x"] = df["x"].astype(np.float64)
    df["y"] = df["y"].astype(np.float64)
    return WorldManifest(out_dir=out, df=df, class_names=list(config.classes), config=config, frequencies=world.get("frequencies", {}))


def write_contact_sheet(world: WorldManifest, path: str | os.PathLike[str], split: str | None = None, per_class: int = 8) -> None:
    """A contact sheet: one column per class, ``per_class`` rows, from ``split`` (default: balanced
    if present, else the first split)."""
    from PIL import Image

    splits = list(world.config.splits)
    split = split or ("balanced" if "balanced" in splits else splits[0])
    df = world.split(split)
    ims = []
    for r in range(per_class):
        for c in world.class_names:
            sub = df[df["label"] == c]
            if r < len(sub):
                with Image.open(world.out_dir / sub["uri"].iloc[r]) as im:
                    ims.append(im.convert("RGB"))
            else:
                ims.append(Image.new("RGB", (world.config.image_size,) * 2, (0, 0, 0)))
    contact_sheet(ims, len(world.class_names), scale=2).save(path)
