"""Train, evaluate and export the benchmark world's models (one command, CPU, minutes).

* three inspected classifiers of two families trained on the biased ``train`` split
  (:class:`ConvNet` x2, :class:`TinyResNet`), which learn the planted shortcuts and little else
  (the discovery benchmarks' models);
* three *repairable* inspected classifiers of the same two families: pretrained on an extra
  unbiased split (the world's stand-in for ImageNet pretraining), then trained on ``train`` until
  they lean on the shortcuts - their features know the objects (:func:`feature_probe_accuracy`),
  their heads still fail the planted slices (the mitigation benchmarks' models);
* the robust feature extractor (:class:`RobustResNet`) adversarially trained with L2 PGD on
  ``balanced`` with class/background/colour heads;
* a small open_clip image–text model trained contrastively on the world's captions.

Each is exported to ONNX (the registry's contract) into a Triton model repository
(``triton_models/``: python-backend ``config.pbtxt`` + onnxruntime ``configs/onnxruntime.pbtxt``)
and described in ``triton_models/world_models.json`` with its measured figures, which
:func:`evaluate_committed` reproduces from the committed files.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from failurelens.data.images import Preprocessing

Log = Callable[[str], None]
WORLD_MEAN = (0.5, 0.5, 0.5)
WORLD_STD = (0.25, 0.25, 0.25)
INSPECTED = (
    # name, family, width/widths, seed
    ("world-convnet-a", "convnet", 32, 0),
    ("world-convnet-b", "convnet", 24, 1),
    ("world-resnet-a", "resnet", (32, 64, 128), 0),
)
#: repairable inspected classifiers: name, family, width/widths, seed, pretraining epochs on the
#: unbiased pretraining split, learning rate of the (one-epoch) training on the biased train split
REPAIRABLE = (
    ("world-convnet-r1", "convnet", 16, 0, 8, 3e-3),
    ("world-convnet-r2", "convnet", 16, 1, 8, 3e-3),
    ("world-resnet-r1", "resnet", (16, 32, 64), 2, 6, 1e-3),
)
#: the extra unbiased split the repairable classifiers are pretrained on (rendered in memory;
#: its name seeds it, so it shares no image with the world's splits)
PRETRAIN_SPLIT = "pretrain"
ROBUST_NAME = "world-robust"
CLIP_NAME = "world-clip"
MANIFEST_NAME = "world_models.json"


@dataclasses.dataclass
class TrainSettings:
    inspected_epochs: int = 4
    robust_epochs: int = 14
    robust_clean_epochs: int = 6
    robust_eps: float = 1.0
    robust_steps: int = 3
    clip_epochs: int = 30
    clip_splits: tuple[str, ...] = ("balanced", "train")
    eval_attack_steps: int = 10
    eval_robust_images: int = 1000
    pretrain_images: int = 12000
    repairable_train_epochs: int = 1


def preprocessing() -> Preprocessing:
    return Preprocessing(input_size=(64, 64), mean=WORLD_MEAN, std=WORLD_STD)


def load_images(world: Any, split: str) -> tuple[np.ndarray, Any]:
    """uint8 [N,64,64,3] images of a split and its manifest rows."""
    df = world.split(split).reset_index(drop=True)
    x = np.stack([np.asarray(Image.open(world.out_dir / u).convert("RGB")) for u in df["uri"]])
    return x, df


def _codes(values: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocab)}
    return np.array([index[v] for v in values], dtype=np.int64)


def slice_table(world: Any, df: Any, preds: np.ndarray) -> list[dict[str, Any]]:
    """Per planted slice: accuracy on the slice vs on the class's common images (dominant attributes, no planted slice)."""
    from failurelens.world.generate import planted_slice_mask

    cfg = world.config
    labels = _codes(df["label"], world.class_names)
    correct = preds == labels
    rows = []
    for s in cfg.planted_slices:
        cls = s.class_name
        bias = cfg.bias[cls]
        in_class = (df["label"] == cls).to_numpy()
        common = in_class & (df["planted_slice"].fillna("") == "").to_numpy()
        if bias.background:
            common &= (df["background"] == bias.background).to_numpy()
        if bias.color:
            common &= (df["color"] == bias.color).to_numpy()
        mask = planted_slice_mask(df, s)
        rows.append(
            {
                "slice": s.name,
                "class": cls,
                "attribute": s.attribute,
                "value": s.value,
                "n": int(mask.sum()),
                "accuracy": float(correct[mask].mean()),
                "common_n": int(common.sum()),
                "common_accuracy": float(correct[common].mean()),
                "gap_pts": 100.0 * float(correct[common].mean() - correct[mask].mean()),
            }
        )
    return rows


def probe_halves(df: Any) -> np.ndarray:
    """Boolean mask of the rows a feature probe is fitted on: within each class, the first half of
    its rows in manifest order (the rest score it)."""
    labels = df["label"].to_numpy()
    fit = np.zeros(len(df), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        fit[idx[: len(idx) // 2]] = True
    return fit


def feature_probe_accuracy(features: np.ndarray, labels: np.ndarray, fit: np.ndarray, C: float = 1.0) -> float:
    """How well a classifier's features know the objects: a linear probe on frozen ``features``
    (of the world's ``balanced`` split, where backgrounds and colours say nothing about the class).
    Multinomial logistic regression (L2, ``C``, lbfgs) on the ``fit`` rows, features standardised
    with the fit rows' mean and std; accuracy on the other rows. Deterministic."""
    from sklearn.linear_model import LogisticRegression

    f = np.asarray(features, dtype=np.float64)
    mu = f[fit].mean(0)
    sd = f[fit].std(0)
    z = (f - mu) / np.where(sd > 1e-8, sd, 1.0)
    clf = LogisticRegression(C=C, max_iter=5000).fit(z[fit], labels[fit])
    return float(clf.score(z[~fit], labels[~fit]))


def _inspected_net(family: str, width: Any, num_classes: int):
    from failurelens.models.world_nets import ConvNet, TinyResNet

    return ConvNet(num_classes, width) if family == "convnet" else TinyResNet(num_classes, tuple(width))


def _logits_and_features(wrapped: Any) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 images -> [N, C + D] logits and features of a :class:`Normalized` classifier."""
    import torch

    from failurelens.models.training import predict

    return lambda xs: predict(wrapped, xs, head=lambda m, z: torch.cat(m(z), 1))


def _classifier_metrics(world: Any, data: dict[str, Any], outputs: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """Accuracies on train/val/test/balanced, the planted-slice table on test and the feature
    probe on balanced; ``outputs(images)`` returns logits and features side by side [N, C + D]."""
    classes = world.class_names
    c = len(classes)
    metrics: dict[str, Any] = {}
    for split in ("train", "val", "test", "balanced"):
        xs, ds = data[split]
        out = outputs(xs)
        preds = out[:, :c].argmax(1)
        labels = _codes(ds["label"], classes)
        metrics[f"{split}_accuracy"] = float((preds == labels).mean())
        if split == "test":
            metrics["slices"] = slice_table(world, ds, preds)
        if split == "balanced":
            metrics["feature_probe_accuracy"] = feature_probe_accuracy(out[:, c:], labels, probe_halves(ds))
    metrics["min_rare_slice_gap_pts"] = min(r["gap_pts"] for r in metrics["slices"])
    return metrics


def train_all(
    world_dir: str | Path, repo: str | Path, settings: TrainSettings = TrainSettings(), log: Log = print, only: Sequence[str] = ()
) -> dict[str, Any]:
    """Train every world model, export into ``repo``, write ``repo/world_models.json``; returns it."""
    import torch

    from failurelens.models.training import RobustConfig, robust_accuracy, train_classifier, train_robust
    from failurelens.models.world_nets import Normalized, RobustResNet
    from failurelens.world.generate import load_world

    torch.set_num_threads(max(1, torch.get_num_threads()))
    world = load_world(world_dir)
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    manifest_path = repo / MANIFEST_NAME
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": {}}
    manifest["world"] = {"config": world.config.to_dict()}
    pp = preprocessing()
    t_all = time.monotonic()
    log("loading images ...")
    data = {s: load_images(world, s) for s in ("train", "val", "test", "balanced")}
    classes = world.class_names

    def want(name: str) -> bool:
        return not only or name in only

    for name, family, width, seed in INSPECTED:
        if not want(name):
            continue
        log(f"training inspected classifier {name} ({family}) on the biased train split ...")
        t0 = time.monotonic()
        torch.manual_seed(seed)
        net = _inspected_net(family, width, len(classes))
        x, df = data["train"]
        train_classifier(
            Normalized(net, WORLD_MEAN, WORLD_STD), x, _codes(df["label"], classes), epochs=settings.inspected_epochs, seed=seed, log=log
        )
        wrapped = Normalized(net, WORLD_MEAN, WORLD_STD)
        metrics = _classifier_metrics(world, data, _logits_and_features(wrapped))
        res = _export_classifier(net, repo, name, pp)
        _save_weights(net, repo / name)
        manifest["models"][name] = {
            "kind": "classifier",
            "role": "discovery",
            "family": family,
            "seed": seed,
            "class_names": classes,
            "preprocessing": pp.to_dict(),
            "onnx": str(res),
            "metrics": metrics,
            "train_seconds": round(time.monotonic() - t0, 1),
        }
        log(f"  {name}: test accuracy {metrics['test_accuracy']:.3f}, smallest rare-slice gap {metrics['min_rare_slice_gap_pts']:.1f} pts")
        _write(manifest_path, manifest)

    pretrain = None
    for name, family, width, seed, pre_epochs, lr in REPAIRABLE:
        if not want(name):
            continue
        if pretrain is None:
            from failurelens.world.synthetic import render_unbiased_split

            t0 = time.monotonic()
            xp, dp = render_unbiased_split(world.config, PRETRAIN_SPLIT, settings.pretrain_images, workers=2)
            pretrain = (xp, _codes(dp["label"], classes))
            log(f"rendered the unbiased pretraining split ({len(xp)} images, {time.monotonic() - t0:.1f}s)")
        log(
            f"training repairable classifier {name} ({family}): {pre_epochs} epochs on the unbiased pretraining split, "
            f"then {settings.repairable_train_epochs} on the biased train split ..."
        )
        t0 = time.monotonic()
        torch.manual_seed(seed)
        net = _inspected_net(family, width, len(classes))
        wrapped = Normalized(net, WORLD_MEAN, WORLD_STD)
        train_classifier(wrapped, pretrain[0], pretrain[1], epochs=pre_epochs, seed=seed, log=log)
        x, df = data["train"]
        train_classifier(wrapped, x, _codes(df["label"], classes), epochs=settings.repairable_train_epochs, lr=lr, seed=seed, log=log)
        metrics = _classifier_metrics(world, data, _logits_and_features(wrapped))
        res = _export_classifier(net, repo, name, pp)
        _save_weights(net, repo / name)
        manifest["models"][name] = {
            "kind": "classifier",
            "role": "repairable",
            "family": family,
            "seed": seed,
            "class_names": classes,
            "preprocessing": pp.to_dict(),
            "onnx": str(res),
            "metrics": metrics,
            "recipe": {
                "pretrain_split": PRETRAIN_SPLIT,
                "pretrain_images": settings.pretrain_images,
                "pretrain_epochs": pre_epochs,
                "train_epochs": settings.repairable_train_epochs,
                "train_lr": lr,
            },
            "train_seconds": round(time.monotonic() - t0, 1),
        }
        log(
            f"  {name}: test accuracy {metrics['test_accuracy']:.3f}, feature probe {metrics['feature_probe_accuracy']:.3f}, "
            f"smallest rare-slice gap {metrics['min_rare_slice_gap_pts']:.1f} pts"
        )
        _write(manifest_path, manifest)

    if want(ROBUST_NAME):
        log(
            f"adversarially training the robust feature extractor {ROBUST_NAME} (L2 PGD eps {settings.robust_eps}, {settings.robust_steps} steps) on balanced ..."
        )
        t0 = time.monotonic()
        torch.manual_seed(0)
        cfg = world.config
        net = RobustResNet(len(classes), len(cfg.backgrounds), len(cfg.colors))
        wrapped = Normalized(net, WORLD_MEAN, WORLD_STD)

        def heads(z):
            return wrapped.model.head_logits((z - wrapped.mean) / wrapped.std)

        def targets(df):
            return {
                "class": _codes(df["label"], classes),
                "background": _codes(df["background"], cfg.backgrounds),
                "color": _codes(df["color"], cfg.colors),
            }

        xb, db = data["balanced"]
        train_robust(
            wrapped,
            heads,
            xb,
            targets(db),
            RobustConfig(
                eps=settings.robust_eps,
                steps=settings.robust_steps,
                epochs=settings.robust_epochs,
                clean_epochs=settings.robust_clean_epochs,
                batch=64,
            ),
            log=log,
        )
        xt, dt = data["test"]
        k = min(settings.eval_robust_images, len(xt))
        acc = robust_accuracy(
            heads, wrapped, xt[:k], {n: v[:k] for n, v in targets(dt).items()}, eps=settings.robust_eps, steps=settings.eval_attack_steps
        )
        res = _export_feature_extractor(net, repo, ROBUST_NAME, pp)
        _save_weights(net, repo / ROBUST_NAME)
        manifest["models"][ROBUST_NAME] = {
            "kind": "feature_extractor",
            "preprocessing": pp.to_dict(),
            "onnx": str(res),
            "attack": {
                "norm": "L2",
                "eps": settings.robust_eps,
                "train_steps": settings.robust_steps,
                "clean_warmup_epochs": settings.robust_clean_epochs,
                "epochs": settings.robust_epochs,
                "eval_steps": settings.eval_attack_steps,
                "eval_images": k,
                "pixel_range": [0, 1],
            },
            "metrics": acc,
            "train_seconds": round(time.monotonic() - t0, 1),
        }
        log(f"  {ROBUST_NAME}: " + ", ".join(f"{h} clean {a['clean']:.3f} adv {a['adversarial']:.3f}" for h, a in acc.items()))
        _write(manifest_path, manifest)

    if want(CLIP_NAME):
        log(f"contrastively training the image-text model {CLIP_NAME} on the world's captions ...")
        t0 = time.monotonic()
        entry = _train_and_export_clip(world, data, repo, settings, log)
        entry["train_seconds"] = round(time.monotonic() - t0, 1)
        manifest["models"][CLIP_NAME] = entry
        _write(manifest_path, manifest)
    if not only:  # a partial run (--only) keeps the full run's figure
        manifest["total_seconds"] = round(time.monotonic() - t_all, 1)
    _write(manifest_path, manifest)
    return manifest


def _write(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------ exports
WEIGHTS_FILE = "weights.safetensors"


def _save_weights(net: Any, folder: Path) -> None:
    """The torch weights beside the ONNX file (safetensors, never pickle): for attacks and parity."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(folder / WEIGHTS_FILE))


def load_weights(net: Any, folder: str | Path) -> Any:
    from safetensors.torch import load_file

    net.load_state_dict(load_file(str(Path(folder) / WEIGHTS_FILE)))
    return net.eval()


def build_net(name: str, entry: dict[str, Any], world_config: Any) -> Any:
    """The torch module of a committed world model (random init; load_weights fills it)."""
    import open_clip

    from failurelens.models.world_nets import RobustResNet

    if entry["kind"] == "classifier":
        width = next(w for n, _, w, *_ in INSPECTED + REPAIRABLE if n == name)
        return _inspected_net(entry["family"], width, len(entry["class_names"]))
    if entry["kind"] == "feature_extractor":
        return RobustResNet(len(world_config.classes), len(world_config.backgrounds), len(world_config.colors))
    return open_clip.CLIP(**entry["config"])


def _install(repo: Path, name: str, onnx_path: Path, max_batch_size: int = 256) -> Path:
    """Write a model folder (both configs + ONNX) into the committed repository, without model.py
    (the python-backend wrapper is installed by the registry / :func:`install_python_wrappers`)."""
    from failurelens.triton import repository as trepo

    spec = trepo.spec_from_onnx(name, onnx_path, max_batch_size=max_batch_size)
    folder = trepo.write_model(repo, spec, onnx_path)
    wrapper = folder / "1" / "model.py"
    if wrapper.exists():
        wrapper.unlink()
    return folder


def _export_classifier(net: Any, repo: Path, name: str, pp: Preprocessing) -> str:
    import tempfile

    from failurelens.models.export import export_classifier

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        export_classifier(net, out_path=out, input_size=pp.input_size, preprocessing=pp)
        folder = _install(repo, name, out)
    return str((folder / "1" / "model.onnx").relative_to(repo))


def _export_feature_extractor(net: Any, repo: Path, name: str, pp: Preprocessing) -> str:
    import tempfile

    from failurelens.models.export import export_feature_extractor

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        export_feature_extractor(net, out, preprocessing=pp)
        folder = _install(repo, name, out)
    return str((folder / "1" / "model.onnx").relative_to(repo))


def clip_prompt_sets(world: Any) -> dict[str, list[list[str]]]:
    """Zero-shot prompts per attribute value: every caption of the world's template that has the
    value, over all values of the other attributes (prompt ensembling, as CLIP does)."""
    import itertools

    from failurelens.world.config import BACKGROUND_PHRASES

    cfg = world.config
    combos = list(itertools.product(("small", "large"), cfg.colors, world.class_names, cfg.backgrounds))

    def caption(size: str, color: str, cls: str, bg: str) -> str:
        return f"a photo of a {size} {color} {cls} {BACKGROUND_PHRASES[bg]}"

    return {
        "class": [[caption(*c) for c in combos if c[2] == v] for v in world.class_names],
        "background": [[caption(*c) for c in combos if c[3] == v] for v in cfg.backgrounds],
        "color": [[caption(*c) for c in combos if c[1] == v] for v in cfg.colors],
    }


def ensemble(text_emb: np.ndarray, groups: list[list[str]]) -> np.ndarray:
    """Mean of the normalised embeddings of each group (rows of ``text_emb`` in group order)."""
    t = text_emb / np.linalg.norm(text_emb, axis=1, keepdims=True)
    out, i = [], 0
    for g in groups:
        out.append(t[i : i + len(g)].mean(0))
        i += len(g)
    return np.stack(out)


def zero_shot_accuracy(image_emb: np.ndarray, text_emb: dict[str, np.ndarray], df: Any, world: Any) -> dict[str, float]:
    """Zero-shot accuracy of each attribute; ``text_emb[attr]`` has one row per attribute value."""
    cfg = world.config
    vocab = {"class": world.class_names, "background": list(cfg.backgrounds), "color": list(cfg.colors)}
    column = {"class": "label", "background": "background", "color": "color"}
    fi = image_emb / np.linalg.norm(image_emb, axis=1, keepdims=True)
    out = {}
    for attr, t in text_emb.items():
        ft = t / np.linalg.norm(t, axis=1, keepdims=True)
        pred = (fi @ ft.T).argmax(1)
        out[attr] = float((pred == _codes(df[column[attr]], vocab[attr])).mean())
    return out


def _train_and_export_clip(world: Any, data: dict[str, Any], repo: Path, settings: TrainSettings, log: Log) -> dict[str, Any]:
    import tempfile

    import open_clip
    import torch

    from failurelens.data.tokenizer import ClipTokenizer
    from failurelens.models.export import export_open_clip
    from failurelens.models.training import train_clip
    from failurelens.models.world_nets import world_clip_config

    cfg = world_clip_config()
    ctx = cfg["text_cfg"]["context_length"]
    tok = ClipTokenizer(context_length=ctx)
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg)
    xs = np.concatenate([data[s][0] for s in settings.clip_splits])
    caps = [c for s in settings.clip_splits for c in data[s][1]["caption"]]
    train_clip(model, lambda t: torch.from_numpy(tok.encode(t)), xs, caps, mean=WORLD_MEAN, std=WORLD_STD, epochs=settings.clip_epochs, log=log)
    prompts = clip_prompt_sets(world)
    xt, dt = data["test"]
    m = torch.tensor(WORLD_MEAN).view(1, 3, 1, 1)
    sd = torch.tensor(WORLD_STD).view(1, 3, 1, 1)
    from failurelens.models.training import to_unit

    with torch.no_grad():
        img = np.concatenate([model.encode_image((to_unit(xt[s : s + 512]) - m) / sd).numpy() for s in range(0, len(xt), 512)])
        txt = {a: ensemble(model.encode_text(torch.from_numpy(tok.encode([p for grp in g for p in grp]))).numpy(), g) for a, g in prompts.items()}
    acc = zero_shot_accuracy(img, txt, dt, world)
    log("  zero-shot accuracy on test: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "world_clip.pt"
        torch.save(model.state_dict(), ckpt)
        res = export_open_clip(
            CLIP_NAME, ckpt, tmp, model_config={"model_cfg": cfg, "preprocess_cfg": {"mean": list(WORLD_MEAN), "std": list(WORLD_STD)}}
        )
        image_folder = _install(repo, f"{CLIP_NAME}__image", Path(res.paths["image"]))
        _save_weights(model, image_folder)
        text_folder = _install(repo, f"{CLIP_NAME}__text", Path(res.paths["text"]))
    return {
        "kind": "image_text",
        "config": cfg,
        "train_splits": list(settings.clip_splits),
        "epochs": settings.clip_epochs,
        "context_length": ctx,
        "preprocessing": res.preprocessing,
        "onnx": str((image_folder / "1" / "model.onnx").relative_to(repo)),
        "text_onnx": str((text_folder / "1" / "model.onnx").relative_to(repo)),
        "prompt_template": "a photo of a {size} {color} {class} {background phrase}",
        "metrics": {"zero_shot_accuracy": acc},
        "logit_scale": float(model.logit_scale.detach().exp()),
    }


# ------------------------------------------------------------------------------ reproduction
def _onnx_run(path: Path, feeds: dict[str, np.ndarray], outputs: list[str], batch: int = 512) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ((name, x),) = feeds.items()
    parts = [sess.run(outputs, {name: x[s : s + batch]}) for s in range(0, len(x), batch)]
    return [np.concatenate([p[i] for p in parts]) for i in range(len(outputs))]


def evaluate_committed(world_dir: str | Path, repo: str | Path, log: Log = print, attack: bool = True) -> dict[str, Any]:
    """Re-measure every committed model's reported figures from the committed files on a
    regenerated world: ONNX graphs for accuracies, safetensors weights for the PGD attack."""
    from failurelens.data.images import preprocess
    from failurelens.data.tokenizer import ClipTokenizer
    from failurelens.models.training import robust_accuracy
    from failurelens.models.world_nets import Normalized
    from failurelens.world.generate import load_world

    world = load_world(world_dir)
    repo = Path(repo)
    manifest = json.loads((repo / MANIFEST_NAME).read_text())
    pp = preprocessing()
    out: dict[str, Any] = {}
    cache: dict[str, tuple[np.ndarray, Any, np.ndarray]] = {}

    def split(name: str) -> tuple[np.ndarray, Any, np.ndarray]:
        if name not in cache:
            x, df = load_images(world, name)
            cache[name] = (x, df, preprocess([Image.fromarray(a) for a in x], pp))
        return cache[name]

    for name, entry in manifest["models"].items():
        if entry["kind"] == "classifier":
            m: dict[str, Any] = {}
            for s in ("train", "val", "test", "balanced"):
                _, df, xs = split(s)
                logits, feats = _onnx_run(repo / entry["onnx"], {"images": xs}, ["logits", "features"])
                labels = _codes(df["label"], world.class_names)
                m[f"{s}_accuracy"] = float((logits.argmax(1) == labels).mean())
                if s == "test":
                    m["slices"] = slice_table(world, df, logits.argmax(1))
                if s == "balanced":
                    m["feature_probe_accuracy"] = feature_probe_accuracy(feats, labels, probe_halves(df))
            m["min_rare_slice_gap_pts"] = min(r["gap_pts"] for r in m["slices"])
        elif entry["kind"] == "feature_extractor":
            x, df, _ = split("test")
            k = entry["attack"]["eval_images"]
            cfg = world.config
            net = load_weights(build_net(name, entry, cfg), repo / name)
            wrapped = Normalized(net, WORLD_MEAN, WORLD_STD)

            def heads(z):
                return wrapped.model.head_logits((z - wrapped.mean) / wrapped.std)

            targets = {
                "class": _codes(df["label"], world.class_names),
                "background": _codes(df["background"], cfg.backgrounds),
                "color": _codes(df["color"], cfg.colors),
            }
            if attack:
                m = robust_accuracy(
                    heads, wrapped, x[:k], {n: v[:k] for n, v in targets.items()}, eps=entry["attack"]["eps"], steps=entry["attack"]["eval_steps"]
                )
            else:
                m = {}
        else:
            _, df, _ = split("test")
            x, _, _ = split("test")
            pp_clip = preprocessing()
            xs = preprocess([Image.fromarray(a) for a in x], pp_clip)
            img = _onnx_run(repo / entry["onnx"], {"images": xs}, ["embeddings"])[0]
            tok = ClipTokenizer(context_length=entry["context_length"])
            txt = {}
            for attr, groups in clip_prompt_sets(world).items():
                ids = tok.encode([p for g in groups for p in g])
                txt[attr] = ensemble(_onnx_run(repo / entry["text_onnx"], {"input_ids": ids}, ["embeddings"])[0], groups)
            m = {"zero_shot_accuracy": zero_shot_accuracy(img, txt, df, world)}
        out[name] = m
        log(f"  re-measured {name}")
    return out
