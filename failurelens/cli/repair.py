"""``failurelens generators | generate | retrain | repair``: targeted images, a new head published as
a new model version, and the mitigation paper's protocol in one go."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from failurelens import errors
from failurelens.cli import context
from failurelens.cli.console import ProgressBars, print_lines
from failurelens.v1 import generation_pb2, registry_pb2
from failurelens.workflow import repair as rp

STRATEGIES = {name.replace("_", "-"): enum for name, enum in rp.STRATEGY_ENUMS.items()} | {"explicit": generation_pb2.PROMPT_STRATEGY_EXPLICIT}


def _head_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("head training (left out: the Retraining service's defaults, the paper's Table 4)")
    g.add_argument("--lam", type=float, default=None, help="weight of the generated images' loss (lambda)")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--batch-size", type=int, default=None, help="0: full batch")
    g.add_argument("--init", choices=("own", "new"), default=None, help="start from the model's own head or a new one")
    g.add_argument("--seed", type=int, default=None)


def _head_params(ns: argparse.Namespace) -> dict[str, Any]:
    return {"lam": ns.lam, "epochs": ns.epochs, "lr": ns.lr, "batch_size": ns.batch_size, "init": ns.init, "seed": ns.seed}


def add_commands(sub: Any) -> None:
    ls = sub.add_parser("generators", help="the Generation service's backends")
    ls.set_defaults(fn=cmd_generators)

    g = sub.add_parser("generate", help="images from prompts, registered as a dataset (split debug_train)")
    g.add_argument("--dataset", required=True, help="the dataset whose classes the images are of")
    g.add_argument("--name", required=True, help="name of the generated dataset")
    g.add_argument("--generator", default="world", help="a backend from `failurelens generators`")
    g.add_argument("--strategy", choices=sorted(STRATEGIES), default="explicit")
    g.add_argument("--prompt", nargs=2, action="append", default=[], metavar=("CLASS", "TEXT"), help="an explicit prompt (repeatable)")
    g.add_argument("--count", type=int, default=8, help="images per explicit prompt")
    g.add_argument("--classes", nargs="*", default=[], help="classes (names or indices) for the strategies (default: all)")
    g.add_argument("--images-per-class", type=int, default=None)
    g.add_argument("--top-k", type=int, default=None, help="failure backgrounds / captions per class")
    g.add_argument("--assignment", action="append", default=[], help="background assignment Parquet URI (failure-backgrounds; several are pooled)")
    g.add_argument("--by-frequency", action="store_true", help="failure-backgrounds: images in proportion to the backgrounds' failure counts")
    g.add_argument("--captions", action="append", default=[], help="caption table URI (failure-captions; repeatable)")
    g.add_argument("--vocabulary", default="", help="caption vocabulary JSON, file or URI (random-backgrounds)")
    g.add_argument("--seed", type=int, default=None)
    g.set_defaults(fn=cmd_generate)

    r = sub.add_parser("retrain", help="a new linear head on frozen features, published as a new version of the model")
    r.add_argument("--model", required=True)
    r.add_argument("--version", type=int, default=None, help="the version whose backbone and head are the start (default: the latest)")
    r.add_argument("--train", required=True, help="embedding set of the model over its original training data")
    r.add_argument("--debug-train", required=True, help="embedding set of the model over the generated images")
    r.add_argument(
        "--eval", action="append", default=[], metavar="NAME=EMBEDDING[@ROWS_URI]", help="an evaluation set, before and after (repeatable)"
    )
    r.add_argument("--dry-run", action="store_true", help="train and evaluate, publish nothing")
    _head_options(r)
    r.set_defaults(fn=cmd_retrain)

    p = sub.add_parser(
        "repair",
        help="the mitigation protocol: debug split -> describe -> generate -> embed -> retrain -> Table 2 -> publish -> verify",
    )
    p.add_argument("--dataset", required=True, help="dataset with train, debug (val) and test splits")
    p.add_argument("--model", required=True, help="the classifier to repair")
    p.add_argument("--clip", required=True, help="the IMAGE_TEXT model that describes the failures")
    p.add_argument("--vocabulary", default="", help="caption vocabulary JSON, file or URI (default: the benchmark world's)")
    p.add_argument("--strategies", nargs="+", choices=sorted(set(STRATEGIES) - {"explicit"}), default=None, help="default: all four")
    p.add_argument("--publish", choices=sorted(set(STRATEGIES) - {"explicit"}), default="failure-backgrounds", help="the strategy published")
    p.add_argument("--generator", default="world")
    p.add_argument("--images-per-class", type=int, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--splits", nargs=3, default=("train", "val", "test"), metavar=("TRAIN", "DEBUG", "TEST"))
    p.add_argument("--json", default="", help="also write the report as JSON to this file")
    _head_options(p)
    p.set_defaults(fn=cmd_repair)


def _vocabulary(ns: argparse.Namespace, st: Any, required: bool) -> str:
    vocab = ns.vocabulary
    if vocab and "://" not in vocab:
        vocab = st.uri(st.put_json(f"uploads/vocabulary/{Path(vocab).stem}.json", json.loads(Path(vocab).read_text())).key)
    if not vocab and required:
        from failurelens.world.config import default_config
        from failurelens.world.vocabulary import world_vocabulary

        vocab = st.uri(st.put_json("uploads/vocabulary/world.json", world_vocabulary(default_config())).key)
    return str(vocab)


def _class_index(names: list[str], value: str) -> int:
    if value.isdigit() and int(value) < len(names):
        return int(value)
    if value not in names:
        raise errors.InvalidArgument.about("classes", f"{value!r} is not a class of the dataset ({', '.join(names)})")
    return names.index(value)


def cmd_generators(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    for g in c.list_generators().generators:
        print(f"{g.name:16s} {g.backend:10s} {g.width}x{g.height}  {g.description}")
    return 0


def cmd_generate(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    st = context.store(ns, c)
    ds = c.call(c.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=ns.dataset))
    names = list(ds.class_names)
    fields: dict[str, Any] = {
        "generator": ns.generator,
        "strategy": STRATEGIES[ns.strategy],
        "base_dataset_id": ds.dataset_id,
        "output_dataset_name": ns.name,
        "classes": [_class_index(names, x) for x in ns.classes],
        "prompts": [generation_pb2.Prompt(label=_class_index(names, cls), text=text, count=ns.count) for cls, text in ns.prompt],
        "assignment_uris": ns.assignment,
        "captions_uris": ns.captions,
        "by_frequency": ns.by_frequency,
        "vocabulary_uri": _vocabulary(ns, st, ns.strategy == "random-backgrounds"),
    }
    fields.update({k: v for k, v in {"images_per_class": ns.images_per_class, "top_k": ns.top_k, "seed": ns.seed}.items() if v is not None})
    with ProgressBars(f"generate {ns.name}") as bars:
        res = c.generate(on_progress=bars, **fields)
    print(f"dataset {res.dataset.dataset_id}: {res.num_images} images from {res.generator} (prompts {res.prompts.uri})")
    return 0


def _eval_set(text: str) -> dict[str, str]:
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise errors.InvalidArgument.about("eval", f"{text!r}: write NAME=EMBEDDING or NAME=EMBEDDING@ROWS_URI")
    emb, _, rows = rest.partition("@")
    return {"name": name, "embedding_id": emb, "rows_uri": rows}


def cmd_retrain(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    fields = {k: v for k, v in _head_params(ns).items() if v is not None}
    if ns.version is not None:
        fields["model_version"] = ns.version
    with ProgressBars(f"retrain {ns.model}") as bars:
        res = c.retrain_head(
            on_progress=bars,
            model_id=ns.model,
            train_embedding_id=ns.train,
            debug_train_embedding_id=ns.debug_train,
            eval_sets=[_eval_set(x) for x in ns.eval],
            dry_run=ns.dry_run,
            **fields,
        )
    for r in res.evaluation.results:
        print(f"  {r.name:16s} n={r.n:5d}  accuracy {r.accuracy_before:.3f} -> {r.accuracy:.3f}")
    if res.version.version:
        print(f"{ns.model} version {res.version.version} published{' (the same request before: reused)' if res.reused else ''}; head {res.head.uri}")
    else:
        print("dry run: nothing published")
    return 0


def cmd_repair(ns: argparse.Namespace) -> int:
    c = context.client(ns)
    st = context.store(ns, c)
    strategies = [s.replace("-", "_") for s in (ns.strategies or rp.STRATEGY_ENUMS)]
    publish = ns.publish.replace("-", "_")
    if publish not in strategies:
        strategies.append(publish)
    train, debug, test = ns.splits
    report = rp.repair(
        c,
        st,
        dataset_id=ns.dataset,
        model_id=ns.model,
        clip_model_id=ns.clip,
        vocabulary_uri=_vocabulary(ns, st, True),
        strategies=strategies,
        publish=publish,
        generator=ns.generator,
        images_per_class=ns.images_per_class,
        top_k=ns.top_k,
        head=_head_params(ns),
        train_split=train,
        debug_split=debug,
        test_split=test,
        bar_factory=ProgressBars,
    )
    print_lines(rp.format_repair(report))
    if ns.json:
        Path(ns.json).write_text(json.dumps(rp.report_dict(report), indent=2))
    return 0
