"""The main job, and small shape images + a tiny CNN for quick tests.

:func:`run_demo` renders the benchmark world, starts the stack, registers the world and the
committed world models, embeds through Triton and summarises from the stored artifacts: every
inspected model's planted-slice failures and the image-text model's zero-shot accuracies.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# sorted: the order a folder-style dataset (split/class/*.png) gives its class names
CLASSES = ["circle", "cross", "square", "triangle"]
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


def draw_shape(cls: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Class ``cls`` of CLASSES on a random background, in the complementary colour."""
    shape = CLASSES[cls]
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int(255 - v) for v in bg)
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    r = int(rng.integers(size // 6, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 2, size - r - 2, 2))
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    else:
        w = max(2, r // 3)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fg)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fg)
    return im


def write_dataset(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """An ImageFolder tree root/split/class/i.png; returns root."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                draw_shape(c, rng).save(d / f"{i:04d}.png")
    return root


def _tiny_cnn(num_classes: int, width: int = 16):  # noqa: ANN202
    import torch
    from torch import nn

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
            self.head = nn.Linear(4 * width, num_classes)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.body(x)
            return self.head(features), features

    return TinyCNN()


def train_tiny_classifier(root: Path, epochs: int = 15, seed: int = 0):  # noqa: ANN201
    """Train the tiny CNN on root/train; returns the torch model (eval mode)."""
    import torch

    from failurelens.data.images import Preprocessing, preprocess

    torch.manual_seed(seed)
    pp = Preprocessing(input_size=(64, 64), mean=MEAN, std=STD)
    xs, ys = [], []
    for c, name in enumerate(CLASSES):
        for p in sorted((root / "train" / name).glob("*.png")):
            xs.append(Image.open(p).convert("RGB"))
            ys.append(c)
    x = torch.from_numpy(preprocess(xs, pp))
    y = torch.tensor(ys)
    model = _tiny_cnn(len(CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y), generator=g)
        for s in range(0, len(y), 32):
            idx = perm[s:s + 32]
            logits, _ = model(x[idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def export_onnx(model, path: Path, input_size: tuple[int, int] = (64, 64)) -> Path:  # noqa: ANN001
    """Export a module returning (logits, features) with a dynamic batch dimension."""
    import torch

    dummy = torch.zeros(2, 3, *input_size)
    with torch.no_grad():
        torch.onnx.export(model, (dummy,), str(path), input_names=["images"], output_names=["logits", "features"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return path


def register_world(client, store, world_dir: Path, name: str = "world"):  # noqa: ANN001, ANN201
    """Upload a generated world (images + manifest with attribute columns) and register it."""
    from failurelens.cli import progress_bar
    from failurelens.clients import upload_dataset

    manifest_uri, names = upload_dataset(store, world_dir, name)
    bar = progress_bar("register world")
    ds = client.register_dataset(on_progress=bar, name=name, manifest_uri=manifest_uri, class_names=names, overwrite=True)
    bar.close()  # type: ignore[attr-defined]
    return ds


def register_world_models(client, store, repo: Path, dataset_id: str = "world") -> dict:  # noqa: ANN001
    """Register every committed world model (triton_models/world_models.json) with the registry."""
    from failurelens.clients import upload_file
    from failurelens.convert import preprocessing_to_proto
    from failurelens.data.images import Preprocessing
    from failurelens.models.world_models import MANIFEST_NAME
    from failurelens.v1 import registry_pb2

    kinds = {"classifier": registry_pb2.MODEL_KIND_CLASSIFIER, "feature_extractor": registry_pb2.MODEL_KIND_FEATURE_EXTRACTOR,
             "image_text": registry_pb2.MODEL_KIND_IMAGE_TEXT}
    models = json.loads((repo / MANIFEST_NAME).read_text())["models"]
    out = {}
    for name, e in models.items():
        fields = dict(name=name, kind=kinds[e["kind"]], overwrite=True,
                      onnx_uri=upload_file(store, repo / e["onnx"], f"uploads/models/{name}/model.onnx"),
                      preprocessing=preprocessing_to_proto(Preprocessing.from_dict(e["preprocessing"])))
        if e["kind"] == "classifier":
            fields["dataset_id"] = dataset_id
        if e["kind"] == "image_text":
            fields["text_onnx_uri"] = upload_file(store, repo / e["text_onnx"], f"uploads/models/{name}/text.onnx")
            fields["tokenizer"] = registry_pb2.Tokenizer(kind="clip_bpe", context_length=e["context_length"])
        out[name] = client.register_model(**fields)
    return out


def run_demo(state_dir: str, store: str = "", splits: tuple[str, ...] = ("test",)) -> int:
    """The main job: the benchmark world and its committed models, end to end through the stack."""
    from failurelens.cli import progress_bar
    from failurelens.clients import FailureLensClient
    from failurelens.models.world_models import clip_prompt_sets, ensemble, slice_table, zero_shot_accuracy
    from failurelens.stack import Stack
    from failurelens.store import open_store
    from failurelens.world.config import default_config
    from failurelens.world.generate import generate_world, load_world

    t0 = time.monotonic()
    repo = Path(__file__).resolve().parents[1] / "triton_models"
    reported = json.loads((repo / "world_models.json").read_text())["models"]
    world_dir = Path(state_dir).resolve() / "world"
    print("1/6 rendering the benchmark world (deterministic; 12 shapes x 10 scenes x 8 colours) ...", flush=True)
    if not (world_dir / "world.json").exists():
        generate_world(default_config(), world_dir, workers=2)
    world = load_world(world_dir)
    print("2/6 starting the stack (Triton + 7 services) ...", flush=True)
    stack = Stack(state_dir, store=store).start()
    try:
        client = FailureLensClient(stack.addresses())
        st = open_store(stack.store)
        print("3/6 registering the world and the committed models ...", flush=True)
        ds = register_world(client, st, world_dir)
        models = register_world_models(client, st, repo)
        print(f"4/6 embedding the {'+'.join(splits)} split through Triton with every model ...", flush=True)
        res = {}
        for name in models:
            bar = progress_bar(f"embed {name}")
            res[name] = client.embed(on_progress=bar, dataset_id=ds.dataset_id, model_id=name, splits=list(splits), overwrite=True)
            bar.close()  # type: ignore[attr-defined]
        print("5/6 summarising from the stored artifacts ...", flush=True)
        manifest = st.get_parquet(st.key_from_uri(ds.manifest.uri)).to_pandas()
        manifest["label"] = [ds.class_names[i] for i in manifest["label"]]
        worst = 100.0
        print()
        print(f"failurelens main job: world {ds.dataset_id} ({ds.num_rows} images, splits {dict(ds.split_counts)})")
        for name, r in res.items():
            kind = reported[name]["kind"]
            rows = st.get_npy(st.key_from_uri(r.rows.uri))
            df = manifest.iloc[rows].reset_index(drop=True)
            if kind == "classifier":
                preds = st.get_npy(st.key_from_uri(r.predictions.uri))
                table = slice_table(world, df, preds)
                gap = min(t["gap_pts"] for t in table)
                worst = min(worst, gap)
                print(f"\n{name}: accuracy {r.accuracy:.3f} on {r.num_rows} images ({r.images_per_second:.0f} img/s through Triton); "
                      f"planted slices (accuracy vs the class's common images):")
                for t in table:
                    print(f"  {t['slice']:18s} n={t['n']:3d}  {t['accuracy']:.2f} vs {t['common_accuracy']:.2f}  gap {t['gap_pts']:5.1f} pts")
            elif kind == "feature_extractor":
                print(f"\n{name}: {r.features.shape[1]}-d robust features for {r.num_rows} images -> {r.features.uri}")
            else:
                img = st.get_npy(st.key_from_uri(r.image_embeddings.uri))
                txt = {}
                for attr, groups in clip_prompt_sets(world).items():
                    emb = client.embed_texts(name, [p for g in groups for p in g], name=f"zero-shot-{attr}")
                    txt[attr] = ensemble(st.get_npy(st.key_from_uri(emb.embeddings.uri)), groups)
                acc = zero_shot_accuracy(img, txt, df, world)
                print(f"\n{name}: zero-shot accuracy from Triton embeddings: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
        print(f"\nsmallest planted-slice gap over the inspected models: {worst:.1f} pts")
        inspected = next(n for n in res if reported[n]["kind"] == "classifier")
        print(f"\n6/6 discovering the failure modes of {inspected} (trees on world-robust features, directions on world-clip "
              f"embeddings, captions, backgrounds, visual evidence) ...", flush=True)
        from failurelens.discover import discover, failure_table, print_failure_table
        from failurelens.world.vocabulary import world_vocabulary

        vocab_uri = st.uri(st.put_json("uploads/vocabulary/world.json", world_vocabulary(world.config)).key)
        found = discover(client, inspected=res[inspected].embedding_id, features=res["world-robust"].embedding_id, clip=res["world-clip"].embedding_id,
                         text_model="world-clip", vocabulary_uri=vocab_uri, class_names=list(ds.class_names), bar_factory=progress_bar)
        print(f"\nfailure modes of {inspected} on {'+'.join(splits)} (fitted on half of each class, validated on the other half; "
              f"classes with a valid leaf: {', '.join(f'{k} {v:.2f}' for k, v in sorted(found.trees.valid_leaf_fraction.items()))}):")
        print_failure_table(failure_table(found))
        if found.evidence is not None:
            print(f"\nvisual evidence (top images, CAM heatmaps, feature attacks) of {len(found.evidence.features)} robust features: "
                  f"{found.evidence.index.uri}")
        print(f"rules: {found.trees.rules_table.uri}\ntotal {time.monotonic() - t0:.0f}s; logs in {stack.log_dir}")
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(run_demo(".state"))
