"""Tests of failurelens.world: the procedurally rendered benchmark world with planted failure modes."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from failurelens.world import (
    BACKGROUND_PHRASES,
    SHAPES,
    ImageAttributes,
    WorldConfigError,
    attribute_distribution,
    caption,
    config_from_dict,
    default_config,
    generate_world,
    load_config,
    load_world,
    plan_world,
    planted_slice_mask,
    quota,
    render,
    render_background,
    render_layers,
    shape_mask,
)
from failurelens.world.generate import MANIFEST_COLUMNS

BIASED = ("train", "val", "test")
SMALL_SPLITS = {"train": 240, "val": 120, "test": 120, "balanced": 120}


def small_config(seed: int = 0, splits: dict[str, int] | None = None):
    return default_config().with_splits(splits or SMALL_SPLITS).with_seed(seed)


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    return generate_world(small_config(), tmp_path_factory.mktemp("world") / "w", workers=1)


# ------------------------------------------------------------------------------ determinism
def test_same_seed_is_byte_identical_whatever_the_workers(small_world, tmp_path):
    calls = []
    again = generate_world(small_config(), tmp_path / "w2", workers=2, progress=lambda d, t: calls.append((d, t)), chunk_size=64)
    a, b = tree_hashes(small_world.out_dir), tree_hashes(again.out_dir)
    assert len(a) == sum(SMALL_SPLITS.values()) + 3  # images + manifest.csv, classes.txt, world.json
    assert a == b
    assert calls[0] == (0, 600) and calls[-1] == (600, 600)
    # PNGs carry no metadata chunks (no time, no text)
    data = (small_world.out_dir / small_world.df["uri"].iloc[0]).read_bytes()
    assert not any(chunk in data for chunk in (b"tIME", b"tEXt", b"iTXt", b"zTXt"))


def test_different_seed_differs(small_world, tmp_path):
    other = generate_world(small_config(seed=1, splits={"train": 48, "val": 24, "test": 24, "balanced": 24}), tmp_path / "w", workers=1)
    assert not other.df[["background", "color", "x", "y"]].head(48).equals(small_world.df[["background", "color", "x", "y"]].head(48))
    same_seed = generate_world(small_config(seed=0, splits={"train": 48, "val": 24, "test": 24, "balanced": 24}), tmp_path / "w0", workers=1)
    differ = 0
    for u in other.df["uri"]:
        if (same_seed.out_dir / u).exists() and (other.out_dir / u).read_bytes() != (same_seed.out_dir / u).read_bytes():
            differ += 1
    assert differ > 0
    assert plan_world(default_config().with_seed(7))["background"].tolist() != plan_world(default_config())["background"].tolist()
    # generating into the same folder replaces the earlier world (no stale images stay behind)
    tiny = generate_world(small_config(seed=1, splits={"train": 12, "val": 12}), tmp_path / "w", workers=1)
    assert len(list((tmp_path / "w" / "images").rglob("*.png"))) == len(tiny.df) == 24
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_world(small_config(), tmp_path / "other")


def test_render_is_deterministic_and_keeps_the_object_across_backgrounds():
    a = render("star", "water", "yellow", "small", 0.4, 0.6, seed=3)
    b = render("star", "water", "yellow", "small", 0.4, 0.6, seed=3)
    c = render("star", "water", "yellow", "small", 0.4, 0.6, seed=4)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes() and a.tobytes() != c.tobytes()
    la = render_layers(ImageAttributes("heart", "grass", "red"), 64, np.random.default_rng(5))
    lb = render_layers(ImageAttributes("heart", "lava", "red"), 64, np.random.default_rng(5))
    assert np.array_equal(la.alpha, lb.alpha)  # same object, other scene: counterfactual images for mitigation
    assert not np.array_equal(la.background, lb.background)
    assert render("bolt", "sky", "white", image_size=128, seed=1).size == (128, 128)


# ------------------------------------------------------------------------------ frequencies
def test_planted_and_dominant_frequencies_match_the_config_in_every_biased_split():
    cfg = default_config()
    df = plan_world(cfg)
    assert len(cfg.planted_slices) >= len(cfg.classes)
    assert sum(1 for b in cfg.bias.values() if b.color is not None) >= 4
    for split in BIASED:
        sdf = df[df["split"] == split]
        counts = sdf["label"].value_counts()
        assert counts.max() - counts.min() <= 1
        for s in cfg.planted_slices:
            m = planted_slice_mask(sdf, s)
            frac = m.sum() / counts[s.class_name]
            assert abs(frac - s.fraction) <= 0.01, (split, s.name, frac)
            assert (sdf["planted_slice"].to_numpy()[m] == s.name).all()  # slices are disjoint in biased splits
            if split in ("val", "test"):
                assert m.sum() >= 20, (split, s.name, int(m.sum()))
        for cls, b in cfg.bias.items():
            cdf = sdf[sdf["label"] == cls]
            assert abs((cdf["background"] == b.background).mean() - b.background_fraction) <= 0.01
            if b.color is not None:
                assert abs((cdf["color"] == b.color).mean() - b.color_fraction) <= 0.01
            # the remaining mass is spread uniformly over the other values (counts within one image)
            for attr in ("background", "color"):
                dist = attribute_distribution(cfg, cls, attr, biased=True)
                fixed = {b.dominant(attr)[0]} | {s.value for s in cfg.slices_of(cls, attr)}
                rest = cdf[attr].value_counts().reindex([v for v in dist if v not in fixed], fill_value=0)
                assert rest.max() - rest.min() <= 1
        # a planted slice's value is another class's dominant one: the shortcut points elsewhere
        for s in cfg.planted_slices:
            assert any(o != s.class_name and o_b.dominant(s.attribute)[0] == s.value for o, o_b in cfg.bias.items())
    # non-planted rows have an empty planted_slice
    assert set(df["planted_slice"]) - {s.name for s in cfg.planted_slices} <= {""} | {n for n in set(df["planted_slice"]) if ";" in n}


def test_balanced_split_is_uniform_and_independent():
    from scipy.stats import chi2_contingency

    cfg = default_config()
    df = plan_world(cfg)
    bal = df[df["split"] == "balanced"]
    n = len(bal)
    for col, values in (("label", cfg.classes), ("background", cfg.backgrounds), ("color", cfg.colors), ("size", tuple(cfg.sizes))):
        counts = bal[col].value_counts().reindex(values, fill_value=0)
        assert (counts - n / len(values)).abs().max() <= len(cfg.classes), (col, counts.to_dict())
    # class x background and background x colour look independent
    for a, b in (("label", "background"), ("background", "color"), ("label", "color")):
        p = chi2_contingency(pd.crosstab(bal[a], bal[b]))[1]
        assert p > 0.001, (a, b, p)
    # ...while the biased train split is strongly dependent (the shortcut)
    tr = df[df["split"] == "train"]
    assert chi2_contingency(pd.crosstab(tr["label"], tr["background"]))[1] < 1e-100


def test_quota_is_exact():
    assert quota([0.9, 0.08, 0.02], 350).tolist() == [315, 28, 7]
    q = quota([1 / 3] * 3, 100)
    assert q.sum() == 100 and q.max() - q.min() == 1
    for n in (0, 1, 7, 99, 1000):
        p = np.array([0.5, 0.07, 0.29, 0.14])
        q = quota(p, n)
        assert q.sum() == n and (np.abs(q - p * n) < 1).all()


# -------------------------------------------------------------------------------- rendering
def test_every_class_background_and_colour_renders_visibly():
    rng = np.random.default_rng(0)
    worst = []
    for k, (shape, bg, color) in enumerate(itertools.product(SHAPES, BACKGROUND_PHRASES, default_config().colors)):
        size = ("small", "large")[k % 2]
        attrs = ImageAttributes(shape, bg, color, size, float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65)))
        lay = render_layers(attrs, 64, np.random.default_rng(k))
        im = np.asarray(lay.image, np.float32)
        diff = np.abs(im - lay.background.astype(np.float32))
        inside = lay.alpha > 0.5
        edge = (lay.outline > 0.5) & ~inside
        assert inside.sum() >= 40, (shape, size)
        # the fill differs from the scene under it, and the outline makes the silhouette pop
        worst.append((float(diff[inside].mean()), float(diff[inside | edge].mean()), shape, bg, color))
    fill_min = min(w[0] for w in worst)
    sil_min = min(w[1] for w in worst)
    assert fill_min >= 20, sorted(worst)[:3]
    assert sil_min >= 30, sorted(worst, key=lambda w: w[1])[:3]


def test_backgrounds_are_distinguishable():
    # nearest centroid on simple statistics (mean colour, std, gradient energy) of fresh scenes
    def feats(a: np.ndarray) -> np.ndarray:
        gy, gx = np.abs(np.diff(a, axis=0)).mean(), np.abs(np.diff(a, axis=1)).mean()
        return np.concatenate([a.mean((0, 1)), a.std((0, 1)), [gy, gx]])

    names = list(BACKGROUND_PHRASES)
    train = {b: np.mean([feats(render_background(b, 64, np.random.default_rng(i))) for i in range(12)], 0) for b in names}
    correct = 0
    total = 0
    for b in names:
        for i in range(100, 120):
            f = feats(render_background(b, 64, np.random.default_rng(i)))
            pred = min(names, key=lambda n: float(np.sum((train[n] - f) ** 2)))
            correct += pred == b
            total += 1
        # and every scene varies from seed to seed
        assert not np.array_equal(render_background(b, 64, np.random.default_rng(1)), render_background(b, 64, np.random.default_rng(2)))
    assert correct / total >= 0.95


def test_shapes_differ():
    masks = {s: shape_mask(s, 64, 32, 32, 18) > 0.5 for s in SHAPES}
    for a, b in itertools.combinations(SHAPES, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.93, (a, b, iou)  # circle/hexagon are the closest pair (~0.91)
    for s, m in masks.items():
        assert 150 < m.sum() < 1100, s


def test_captions_follow_the_template(small_world):
    assert caption(ImageAttributes("star", "sand", "red", "small")) == "a photo of a small red star on sand"
    assert caption(ImageAttributes("ring", "sky", "white", "large", corruption="blur")) == "a blurry photo of a large white ring in the sky"
    assert caption(ImageAttributes("bolt", "night", "pink", "small", corruption="noise")) == "a noisy photo of a small pink bolt at night"
    natural = {
        "grass": "on grass",
        "water": "in water",
        "sand": "on sand",
        "snow": "on snow",
        "sky": "in the sky",
        "brick": "on brick",
        "wood": "on wood",
        "night": "at night",
    }
    for bg, phrase in natural.items():
        assert caption(ImageAttributes("cross", bg, "blue", "large")) == f"a photo of a large blue cross {phrase}"
    phrase_of = {v: k for k, v in BACKGROUND_PHRASES.items()}
    assert len(phrase_of) == len(BACKGROUND_PHRASES)
    pat = re.compile(r"^a (?:(blurry|noisy) )?photo of a (\w+) (\w+) (\w+) (.+)$")
    for r in small_world.df.itertuples(index=False):
        m = pat.match(r.caption)
        assert m, r.caption
        corr, size, color, label, phrase = m.groups()
        assert (size, color, label, phrase_of[phrase]) == (r.size, r.color, r.label, r.background)
        assert {"blurry": "blur", "noisy": "noise", None: "none"}[corr] == r.corruption


# --------------------------------------------------------------------------------- manifest
def test_manifest_loads_validates_and_uploads(small_world, tmp_path):
    from failurelens.clients import upload_dataset
    from failurelens.data.manifest import load_class_names, load_manifest, manifest_from_directory, validate_manifest
    from failurelens.store import LocalStore

    root = small_world.out_dir
    raw = (root / "manifest.csv").read_bytes()
    df = load_manifest(raw, "csv")
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    names = load_class_names(root / "classes.txt")
    assert names == list(default_config().classes)
    man = validate_manifest(df, names)
    assert man.split_counts == SMALL_SPLITS
    assert man.extra_columns == list(MANIFEST_COLUMNS[3:])
    assert set(man.df["corruption"]) <= {"none", "blur", "noise"}  # "none" is not read as missing
    # the slice mask works on index labels too
    s = default_config().slice("star_on_water")
    assert planted_slice_mask(man.df, s, names).sum() == planted_slice_mask(small_world.df, s).sum() > 0
    # every image decodes as 64x64 RGB
    for u in df["uri"].iloc[::37]:
        with Image.open(root / u) as im:
            assert im.size == (64, 64) and im.mode == "RGB"
    # world.json records the config and the measured counts
    world = json.loads((root / "world.json").read_text())
    assert world["config"]["seed"] == 0 and len(world["planted_slices"]) == len(default_config().planted_slices)
    assert world["planted_slices"][0]["counts"]["train"]["count"] == int(
        planted_slice_mask(small_world.split("train"), default_config().planted_slices[0]).sum()
    )
    reloaded = load_world(root)
    assert reloaded.df.equals(
        pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False).assign(
            x=lambda d: d["x"].astype(float), y=lambda d: d["y"].astype(float)
        )
    )
    assert reloaded.config == small_world.config

    ddf, dnames = manifest_from_directory(root)
    assert len(ddf) == len(df) and dnames == names
    store = LocalStore(tmp_path / "store")
    uri, cls = upload_dataset(store, root, "uploads/world-small/")
    assert cls == names
    up = load_manifest(store.get_bytes(store.key_from_uri(uri)), "parquet")
    assert len(up) == len(df) and up["caption"].tolist() == df["caption"].tolist()
    first = store.key_from_uri(up["uri"].iloc[0])
    assert store.get_bytes(first) == (root / df["uri"].iloc[0]).read_bytes()


# ----------------------------------------------------------------------------- validation
def _cfg_dict() -> dict:
    return json.loads(default_config().to_json())


def _error(d: dict) -> WorldConfigError:
    with pytest.raises(WorldConfigError) as ei:
        config_from_dict(d)
    return ei.value


def test_config_validation_errors(tmp_path):
    d = _cfg_dict()
    d["planted_slices"][0]["class"] = "unicorn"
    assert "class 'unicorn' is not one of the classes" in str(_error(d))

    d = _cfg_dict()
    d["planted_slices"].append({"name": "star_on_sand", "class": "star", "attribute": "background", "value": "sand", "fraction": 0.05})
    e = _error(d)
    assert "class 'star': background fractions sum to 1.030 > 1" in str(e)

    d = _cfg_dict()
    d["planted_slices"][0]["value"] = d["bias"][d["planted_slices"][0]["class"]]["background"]
    assert "is the dominant background of class 'circle'" in str(_error(d))

    d = _cfg_dict()
    d["planted_slices"][-1]["value"] = "yellow"  # white_bolt -> yellow bolt: yellow is bolt's dominant colour
    assert "color 'yellow' is the dominant color of class 'bolt'" in str(_error(d))

    d = _cfg_dict()
    del d["bias"]["ring"]
    d["backgrounds"].append("moon")
    d["planted_slices"][0]["fraction"] = 1.5
    e = _error(d)
    msg = str(e)
    assert "'moon' is not known to the renderer" in msg and "class 'ring' has no bias entry" in msg and "fraction must be in (0, 1)" in msg
    assert e.violation_count == len(e.violations) >= 3

    d = _cfg_dict()
    d["splits"]["train"] = -1
    d["corruption"] = {"blur": 0.7, "noise": 0.5}
    msg = str(_error(d))
    assert "splits.train must be a non-negative integer" in msg and "corruption probabilities sum to 1.200 > 1" in msg

    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(WorldConfigError, match="not valid JSON"):
        load_config(p)
    p.write_text(json.dumps(_cfg_dict()))
    assert load_config(p) == default_config()


# ------------------------------------------------------------------------------------- cli
def test_cli_generate_and_register(tmp_path, monkeypatch, capsys):
    from failurelens.cli import context
    from failurelens.cli.world import add_commands

    ap = argparse.ArgumentParser()
    ap.add_argument("--state-dir", default=str(tmp_path / "state"))
    ap.add_argument("--store", default=str(tmp_path / "store"))
    ap.add_argument("--token-file", default="")
    add_commands(ap.add_subparsers(dest="cmd", required=True))

    cfg = tmp_path / "tiny.json"
    d = _cfg_dict()
    d["splits"] = {"train": 24, "val": 24, "test": 24, "balanced": 24}
    cfg.write_text(json.dumps(d))
    out = tmp_path / "w"
    ns = ap.parse_args(
        ["world", "generate", "--config", str(cfg), "--out", str(out), "--workers", "1", "--seed", "5", "--sheet", str(tmp_path / "sheet.png")]
    )
    assert ns.fn(ns) == 0
    assert "world: 96 images" in capsys.readouterr().out
    assert json.loads((out / "world.json").read_text())["config"]["seed"] == 5
    with Image.open(tmp_path / "sheet.png") as im:
        assert im.size[0] > 12 * 64

    registered = {}

    class FakeClient:
        store_uri = ""
        registry = SimpleNamespace(GetDataset=None)

        def call(self, fn, request):  # the name check before any upload: the name is free
            import grpc

            from failurelens.clients import FailureLensError

            raise FailureLensError.local(grpc.StatusCode.NOT_FOUND, f"dataset {request.dataset_id!r} not found")

        def register_dataset(self, on_progress=None, **fields):
            from failurelens.store import open_store

            registered.update(fields)
            store = open_store(str(tmp_path / "store"))
            registered["uploaded"] = [i.key for i in store.list("uploads/")]
            return SimpleNamespace(
                dataset_id=fields["name"],
                num_rows=96,
                class_names=fields["class_names"],
                split_counts={"train": 24},
                unreadable_rows=SimpleNamespace(total=0, rows=[]),
            )

    monkeypatch.setattr(context, "client", lambda ns: FakeClient())
    ns = ap.parse_args(["world", "register", str(out), "--name", "tiny-world"])
    assert ns.fn(ns) == 0
    assert registered["name"] == "tiny-world" and registered["class_names"] == d["classes"]
    # uploads went to a staging prefix of this call, removed once the call ended
    assert re.search(r"/uploads/dataset-tiny-world-[0-9a-f]{12}/manifest\.parquet$", registered["manifest_uri"]), registered["manifest_uri"]
    assert len(registered["uploaded"]) == 96 + 1
    assert not (tmp_path / "store" / "uploads").exists() or not any((tmp_path / "store" / "uploads").rglob("*.png"))
    assert "dataset tiny-world" in capsys.readouterr().out
    ns = ap.parse_args(["world", "register", str(tmp_path), "--name", "x"])
    assert ns.fn(ns) == 1


# ------------------------------------------------------------------------- the default world
@pytest.mark.slow
def test_default_world_renders_quickly(tmp_path):
    cfg = default_config()
    t0 = time.perf_counter()
    world = generate_world(cfg, tmp_path / "default", workers=2)
    dt = time.perf_counter() - t0
    n = sum(cfg.splits.values())
    print(f"\ndefault world: {n} images rendered in {dt:.1f}s with workers=2 ({n / dt:.0f} img/s)")
    assert len(world.df) == n
    assert dt < 120
    freqs = json.loads((world.world_json_path).read_text())["frequencies"]["planted_slices"]
    for name, per in freqs.items():
        assert per["val"]["count"] >= 20 and per["test"]["count"] >= 20, name
    test_star = tmp_path / "default" / "images" / "test" / "star"
    assert len(list(test_star.iterdir())) == (world.df[world.df["split"] == "test"]["label"] == "star").sum() > 0
    t1 = time.perf_counter()
    shutil.rmtree(tmp_path / "default")  # 25k files: do not leave them to pytest's tmp-dir rotation
    print(f"removed it in {time.perf_counter() - t1:.1f}s")


def test_an_unbiased_extra_split_renders_in_memory_deterministically():
    from failurelens.world.synthetic import render_unbiased_split

    cfg = default_config()
    x, df = render_unbiased_split(cfg, "extra", 24)
    assert x.shape == (24, 64, 64, 3) and x.dtype == np.uint8 and df.label.value_counts().min() == 2
    y, _ = render_unbiased_split(cfg, "extra", 24, workers=2)
    assert np.array_equal(x, y)
    z, _ = render_unbiased_split(cfg, "other", 24)
    assert not np.array_equal(x, z)  # the split name seeds the images
    with pytest.raises(ValueError, match="biased split"):
        render_unbiased_split(cfg, "train", 10)
