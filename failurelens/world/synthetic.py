"""Extra splits of the benchmark world rendered in memory (e.g. the repairable classifiers'
pretraining data): :func:`render_unbiased_split` plans a split with every attribute uniform and
independent, exactly as :func:`failurelens.world.generate.generate_world` would plan a split of
that name, and renders it into uint8 [N, H, W, 3] without writing files. A split name the world
does not use seeds images disjoint from the world's own splits. (Images from *prompts* are the
Generation service's: :mod:`failurelens.generation.world`.)
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from typing import Any

import numpy as np
import pandas as pd

from .config import WorldConfig
from .generate import image_rng, plan_split, render_kwargs
from .render import ImageAttributes, render_image

__all__ = ["render_rows", "render_unbiased_split"]


def _render_chunk(args: tuple[int, int, str, dict[str, Any], list[tuple[Any, ...]]]) -> np.ndarray:
    seed, image_size, stream, kw, rows = args
    out = np.empty((len(rows), image_size, image_size, 3), dtype=np.uint8)
    for j, (index, label, background, color, size, x, y, corruption) in enumerate(rows):
        a = ImageAttributes(label=label, background=background, color=color, size=size, x=x, y=y, corruption=corruption)
        out[j] = np.asarray(render_image(a, image_size, image_rng(seed, stream, index), **kw))
    return out


def render_rows(config: WorldConfig, rows: pd.DataFrame, *, stream: str = "synthetic", workers: int = 1, chunk_size: int = 256) -> np.ndarray:
    """Render attribute rows (columns of a world manifest; ``index`` seeds each image, row
    order otherwise) into uint8 [N, H, W, 3]; byte-identical for any ``workers``."""
    idx = rows["index"].to_numpy() if "index" in rows else np.arange(len(rows))
    items = [
        (int(i), r.label, r.background, r.color, r.size, float(r.x), float(r.y), r.corruption) for i, r in zip(idx, rows.itertuples(index=False))
    ]
    n = config.image_size
    if not items:
        return np.zeros((0, n, n, 3), dtype=np.uint8)
    kw = render_kwargs(config)
    chunks = [(config.seed, n, stream, kw, items[s : s + chunk_size]) for s in range(0, len(items), chunk_size)]
    if workers <= 1 or len(chunks) <= 1:
        parts = [_render_chunk(c) for c in chunks]
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with cf.ProcessPoolExecutor(max_workers=int(workers), mp_context=ctx) as pool:
            parts = list(pool.map(_render_chunk, chunks))
    return np.concatenate(parts)


def render_unbiased_split(config: WorldConfig, name: str, n: int, *, workers: int = 1) -> tuple[np.ndarray, pd.DataFrame]:
    """A split ``name`` of ``n`` images with every attribute uniform and independent (like
    ``balanced``; exact per-class quotas), planned and rendered exactly as :func:`generate_world`
    would render a split of that name - but in memory. A name the world does not use gives
    images disjoint from its splits."""
    if name in config.biased_splits:
        raise ValueError(f"{name!r} is a biased split of this world; choose another name")
    cfg = config.with_splits({name: int(n)})
    df = plan_split(cfg, name)
    rows = df.assign(index=np.arange(len(df)))
    return render_rows(cfg, rows, stream=name, workers=workers), df
