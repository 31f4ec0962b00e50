"""The ``failurelens`` command.

    failurelens up [--detach]          start Triton + every service on loopback (Ctrl-C stops all)
    failurelens down                   stop a running stack
    failurelens status                 health of every service
    failurelens dataset register PATH --name N
    failurelens model register MODEL.onnx --name N --kind classifier --mean .. --std .. --dataset D
    failurelens embed --dataset D --model M [--splits val]
    failurelens demo                   the main job: stack, demo dataset + model, embed, summary
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

DEFAULT_STATE = os.environ.get("FAILURELENS_STATE_DIR", ".state")


def progress_bar(desc: str):  # noqa: ANN202
    """A callback drawing a tqdm bar from Progress messages (one bar per stage)."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(p: Any) -> None:
        bar = bars.get(p.stage)
        if bar is None:
            for b in bars.values():
                b.close()
            bar = bars[p.stage] = tqdm(total=p.total or None, desc=f"{desc}: {p.stage}", unit="it", leave=True, file=sys.stderr)
        if p.total and bar.total != p.total:
            bar.total = p.total
        bar.n = p.done
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)
        bar.refresh()

    def close() -> None:
        for b in bars.values():
            b.close()

    update.close = close  # type: ignore[attr-defined]
    return update


def _client(ns: argparse.Namespace):  # noqa: ANN202
    from failurelens.clients import FailureLensClient

    return FailureLensClient.from_stack(ns.state_dir, token=ns.token or None)


def _store(ns: argparse.Namespace, client: Any):  # noqa: ANN202
    from failurelens.store import open_store

    return open_store(ns.store or client.store_uri or None)


# ---------------------------------------------------------------------------- up / down
def cmd_up(ns: argparse.Namespace) -> int:
    from failurelens.stack import Stack, read_record

    rec = read_record(ns.state_dir)
    if rec is not None:
        from failurelens.stack import _alive

        if _alive(rec.get("supervisor_pid", 0)):
            print(f"a stack is already running from {ns.state_dir} (pid {rec['supervisor_pid']}); `failurelens down` first", file=sys.stderr)
            return 1
    if ns.detach:
        log = Path(ns.state_dir) / "logs" / "supervisor.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "failurelens.cli", "--state-dir", ns.state_dir] + (["--store", ns.store] if ns.store else [])
        args += ["up", "--timeout", str(ns.timeout), "--base-port", str(ns.base_port)]
        env = dict(os.environ)
        if ns.auth_token:
            env["FAILURELENS_AUTH_TOKEN"] = ns.auth_token
        with open(log, "ab") as fh:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.monotonic() + ns.timeout + 30
        while time.monotonic() < deadline:
            rec = read_record(ns.state_dir)
            if rec is not None and rec.get("state") == "ready" and rec.get("supervisor_pid") == proc.pid:
                _print_stack(rec)
                return 0
            if proc.poll() is not None:
                print(f"the stack failed to start; see {log}:\n" + log.read_text()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.3)
        proc.terminate()
        print(f"the stack did not become ready in {ns.timeout}s; see {log}", file=sys.stderr)
        return 1

    token = ns.auth_token or os.environ.get("FAILURELENS_AUTH_TOKEN", "")
    stack = Stack(ns.state_dir, store=ns.store, base_port=ns.base_port, auth_token=token)
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack.start(timeout=ns.timeout)
    _print_stack(stack.record("ready"))
    print("stack is up; Ctrl-C or `failurelens down` stops it", flush=True)
    try:
        while not stop["flag"]:
            for name, sp in stack.procs.items():
                if sp.proc.poll() is not None:
                    print(f"service {name} exited with code {sp.proc.returncode}; stopping the stack (log: {sp.log_path})", file=sys.stderr, flush=True)
                    stop["flag"] = True
            time.sleep(0.3)
    finally:
        print("stopping the stack ...", flush=True)
        stack.stop()
        print("stopped", flush=True)
    return 0


def _print_stack(rec: dict[str, Any]) -> None:
    print(f"store:  {rec['store']}")
    if rec.get("triton"):
        print(f"triton: grpc {rec['triton']['grpc']}  metrics {rec['triton']['metrics']}")
    for name, s in rec["services"].items():
        print(f"{name:16s} {s['address']:22s} metrics {s['metrics']}")
    print(f"logs:   {rec['log_dir']}", flush=True)


def cmd_down(ns: argparse.Namespace) -> int:
    from failurelens.stack import stop_recorded

    if not stop_recorded(ns.state_dir):
        print(f"no stack recorded in {ns.state_dir}")
        return 0
    print("stopped")
    return 0


def cmd_status(ns: argparse.Namespace) -> int:
    from failurelens.stack import check_health, read_record

    rec = read_record(ns.state_dir)
    if rec is None:
        print(f"no stack recorded in {ns.state_dir}")
        return 1
    bad = 0
    for name, s in rec["services"].items():
        try:
            status = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING"}.get(check_health(s["address"]), "?")
        except Exception as exc:  # noqa: BLE001
            status = f"DOWN ({type(exc).__name__})"
        bad += status != "SERVING"
        print(f"{name:16s} {s['address']:22s} {status}")
    return 1 if bad else 0


# ------------------------------------------------------------------------------- dataset
def cmd_dataset_register(ns: argparse.Namespace) -> int:
    from tqdm import tqdm

    from failurelens.clients import upload_dataset
    from failurelens.data.manifest import load_class_names
    from failurelens.v1 import common_pb2

    client = _client(ns)
    store = _store(ns, client)
    names = load_class_names(ns.classes) if ns.classes else None
    if "://" in ns.path:
        manifest_uri, class_names = ns.path, names or []
    else:
        bar = tqdm(desc="upload", unit="img", file=sys.stderr)

        def on_file(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        manifest_uri, class_names = upload_dataset(store, ns.path, ns.name, names, on_file=on_file)
        bar.close()
    bar_cb = progress_bar("register")
    policy = common_pb2.CORRUPT_IMAGE_POLICY_FAIL if ns.on_corrupt == "fail" else common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT
    ds = client.register_dataset(on_progress=bar_cb, name=ns.name, manifest_uri=manifest_uri, class_names=class_names,
                                 corrupt_image_policy=policy, overwrite=ns.overwrite, verify_images=not ns.no_verify)
    bar_cb.close()  # type: ignore[attr-defined]
    print(f"dataset {ds.dataset_id}: {ds.num_rows} images, {len(ds.class_names)} classes, splits {dict(ds.split_counts)}")
    if ds.unreadable_rows.total:
        print(f"  {ds.unreadable_rows.total} unreadable images skipped, e.g.:")
        for r in ds.unreadable_rows.rows[:5]:
            print(f"    row {r.row}: {r.uri}: {r.reason}")
    return 0


def cmd_dataset_list(ns: argparse.Namespace) -> int:
    from failurelens.v1 import registry_pb2

    client = _client(ns)
    for d in client.call(client.registry.ListDatasets, registry_pb2.ListDatasetsRequest()).datasets:
        print(f"{d.dataset_id:24s} {d.num_rows:8d} images {len(d.class_names):5d} classes  {dict(d.split_counts)}")
    return 0


# --------------------------------------------------------------------------------- model
_KINDS = {"classifier": 1, "feature_extractor": 2, "image_text": 3}


def cmd_model_register(ns: argparse.Namespace) -> int:
    from failurelens.clients import upload_file
    from failurelens.data.manifest import load_class_names
    from failurelens.v1 import common_pb2, registry_pb2

    client = _client(ns)
    store = _store(ns, client)
    onnx_uri = ns.onnx if "://" in ns.onnx else upload_file(store, ns.onnx, f"uploads/models/{ns.name}/model.onnx")
    text_uri = ""
    if ns.text_onnx:
        text_uri = ns.text_onnx if "://" in ns.text_onnx else upload_file(store, ns.text_onnx, f"uploads/models/{ns.name}/text.onnx")
    pp = common_pb2.Preprocessing(mean=ns.mean, std=ns.std, interpolation=ns.interpolation,
                                  resize=common_pb2.RESIZE_MODE_SHORTER_SIDE_CENTER_CROP if ns.resize == "center_crop" else common_pb2.RESIZE_MODE_STRETCH,
                                  crop_pct=ns.crop_pct)
    if ns.input_size:
        pp.input_height, pp.input_width = ns.input_size
    model = client.register_model(
        name=ns.name, kind=_KINDS[ns.kind], onnx_uri=onnx_uri, text_onnx_uri=text_uri, preprocessing=pp,
        class_names=load_class_names(ns.classes) if ns.classes else [], dataset_id=ns.dataset or "",
        tokenizer=registry_pb2.Tokenizer(kind="clip_bpe", context_length=ns.context_length) if ns.text_onnx else None,
        max_batch_size=ns.max_batch_size, overwrite=ns.overwrite,
    )
    print(f"model {model.model_id}: {registry_pb2.ModelKind.Name(model.kind)}, triton models {list(model.triton_models)}, "
          f"input {model.preprocessing.input_height}x{model.preprocessing.input_width}"
          + (f", {model.num_classes} classes, {model.feature_dim}-d features" if model.num_classes else ""))
    return 0


def cmd_model_list(ns: argparse.Namespace) -> int:
    from failurelens.v1 import registry_pb2

    client = _client(ns)
    for m in client.call(client.registry.ListModels, registry_pb2.ListModelsRequest()).models:
        print(f"{m.model_id:24s} {registry_pb2.ModelKind.Name(m.kind):28s} {list(m.triton_models)}")
    return 0


# --------------------------------------------------------------------------------- embed
def cmd_embed(ns: argparse.Namespace) -> int:
    from failurelens.v1 import common_pb2

    client = _client(ns)
    cb = progress_bar("embed")
    policy = common_pb2.CORRUPT_IMAGE_POLICY_FAIL if ns.on_corrupt == "fail" else common_pb2.CORRUPT_IMAGE_POLICY_SKIP_AND_REPORT
    res = client.embed(on_progress=cb, dataset_id=ns.dataset, model_id=ns.model, splits=ns.splits or [], batch_size=ns.batch_size,
                       corrupt_image_policy=policy, include_feature_map=ns.feature_map, embedding_id=ns.id or "", overwrite=ns.overwrite)
    cb.close()  # type: ignore[attr-defined]
    print(f"embedding set {res.embedding_id}: {res.num_rows} rows, {res.images_per_second:.1f} img/s"
          + (f", accuracy {res.accuracy:.4f}" if res.predictions.uri else "") + (f", {res.skipped_rows.total} skipped" if res.skipped_rows.total else ""))
    for field in ("features", "logits", "predictions", "image_embeddings", "feature_map", "rows", "labels"):
        ref = getattr(res, field)
        if ref.uri:
            print(f"  {field:17s} {ref.uri}  {list(ref.shape)} {ref.dtype}")
    return 0


# ------------------------------------------------------------------------------ discover
def cmd_discover(ns: argparse.Namespace) -> int:
    """Trees, directions, captions, backgrounds and visual evidence for one classifier's embedding set."""
    from failurelens.discover import discover, failure_table, print_failure_table
    from failurelens.v1 import captioning_pb2, embedding_pb2, registry_pb2

    client = _client(ns)
    st = _store(ns, client)
    emb = client.call(client.embedding.GetEmbedding, embedding_pb2.GetEmbeddingRequest(embedding_id=ns.predictions))
    ds = client.call(client.registry.GetDataset, registry_pb2.GetDatasetRequest(dataset_id=emb.dataset_id))
    vocab = ns.vocabulary
    if vocab and "://" not in vocab:
        vocab = st.uri(st.put_json(f"uploads/vocabulary/{Path(vocab).stem}.json", json.loads(Path(vocab).read_text())).key)
    if not vocab:
        from failurelens.world.config import default_config
        from failurelens.world.vocabulary import world_vocabulary

        vocab = st.uri(st.put_json("uploads/vocabulary/world.json", world_vocabulary(default_config())).key)
    method = captioning_pb2.DIRECTION_CAPTION_METHOD_ALIGNED_IMAGES if ns.direction_captions == "aligned-images" else captioning_pb2.DIRECTION_CAPTION_METHOD_TEXT_SCORE
    found = discover(client, inspected=ns.predictions, features=ns.features, clip=ns.clip, text_model=ns.text_model, vocabulary_uri=vocab,
                     class_names=list(ds.class_names), report_prefix=ns.name or "", evidence=not ns.no_evidence, holdout_fraction=ns.holdout,
                     error_modes=ns.error_modes, direction_caption_method=method, bar_factory=progress_bar)
    print(f"failure trees {found.trees.report_id}: valid-leaf fraction " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(found.trees.valid_leaf_fraction.items())))
    fitted = [x for x in found.directions.directions if not x.skipped_reason]
    print(f"failure directions {found.directions.report_id}: {sum(x.mode == 0 for x in fitted)} classes, {sum(x.mode > 0 for x in fitted)} error-mode directions")
    print_failure_table(failure_table(found))
    if found.evidence is not None:
        print(f"visual evidence: {found.evidence.index.uri}")
    print(f"rules: {found.trees.rules_table.uri}")
    return 0


def cmd_demo(ns: argparse.Namespace) -> int:
    from failurelens.demo import run_demo

    return run_demo(ns.state_dir, store=ns.store)


# ---------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="failurelens", description="Find, name and repair the failure modes of image classifiers.")
    ap.add_argument("--state-dir", default=DEFAULT_STATE, help="stack state folder (stack.json, logs, local store); env FAILURELENS_STATE_DIR")
    ap.add_argument("--store", default=os.environ.get("FAILURELENS_STORE", ""), help="artifact store URI (default: the stack's)")
    ap.add_argument("--token", default=os.environ.get("FAILURELENS_AUTH_TOKEN", ""), help="bearer token (env FAILURELENS_AUTH_TOKEN)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    up = sub.add_parser("up", help="start Triton and every service")
    up.add_argument("--detach", action="store_true", help="return once healthy; stop later with `failurelens down`")
    up.add_argument("--base-port", type=int, default=0, help="services on BASE..BASE+6, metrics BASE+50.., Triton BASE+100..102 (default: free ports)")
    up.add_argument("--auth-token", default="", help="require this bearer token on every RPC")
    up.add_argument("--timeout", type=float, default=180.0)
    up.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the running stack").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="health of every service").set_defaults(fn=cmd_status)

    ds = sub.add_parser("dataset", help="datasets").add_subparsers(dest="sub", required=True)
    reg = ds.add_parser("register", help="upload (if local) and register a dataset")
    reg.add_argument("path", help="folder, local manifest (CSV/Parquet), or a manifest URI in the store")
    reg.add_argument("--name", required=True)
    reg.add_argument("--classes", help="class names file (JSON list or one per line)")
    reg.add_argument("--on-corrupt", choices=["skip", "fail"], default="skip")
    reg.add_argument("--no-verify", action="store_true", help="do not decode every image")
    reg.add_argument("--overwrite", action="store_true")
    reg.set_defaults(fn=cmd_dataset_register)
    ds.add_parser("list").set_defaults(fn=cmd_dataset_list)

    md = sub.add_parser("model", help="models").add_subparsers(dest="sub", required=True)
    mr = md.add_parser("register", help="upload (if local) and register an ONNX model")
    mr.add_argument("onnx")
    mr.add_argument("--name", required=True)
    mr.add_argument("--kind", choices=sorted(_KINDS), default="classifier")
    mr.add_argument("--text-onnx", default="", help="IMAGE_TEXT: the text encoder")
    mr.add_argument("--context-length", type=int, default=77)
    mr.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"))
    mr.add_argument("--mean", type=float, nargs=3, default=[0.485, 0.456, 0.406])
    mr.add_argument("--std", type=float, nargs=3, default=[0.229, 0.224, 0.225])
    mr.add_argument("--resize", choices=["stretch", "center_crop"], default="stretch")
    mr.add_argument("--crop-pct", type=float, default=1.0)
    mr.add_argument("--interpolation", choices=["bilinear", "bicubic"], default="bilinear")
    mr.add_argument("--dataset", help="take class names from this registered dataset")
    mr.add_argument("--classes", help="class names file")
    mr.add_argument("--max-batch-size", type=int, default=64)
    mr.add_argument("--overwrite", action="store_true")
    mr.set_defaults(fn=cmd_model_register)
    md.add_parser("list").set_defaults(fn=cmd_model_list)
    from failurelens.models.export_cli import add_export_commands
    from failurelens.world.cli import add_world_commands

    add_export_commands(md)
    add_world_commands(sub)

    em = sub.add_parser("embed", help="run a model over a dataset through Triton")
    em.add_argument("--dataset", required=True)
    em.add_argument("--model", required=True)
    em.add_argument("--splits", nargs="*")
    em.add_argument("--batch-size", type=int, default=32)
    em.add_argument("--on-corrupt", choices=["skip", "fail"], default="skip")
    em.add_argument("--feature-map", action="store_true")
    em.add_argument("--id", default="")
    em.add_argument("--overwrite", action="store_true")
    em.set_defaults(fn=cmd_embed)

    dc = sub.add_parser("discover", help="failure trees + directions + captions + backgrounds + visual evidence of a classifier")
    dc.add_argument("--predictions", required=True, help="embedding set of the inspected CLASSIFIER")
    dc.add_argument("--features", required=True, help="embedding set of the robust FEATURE_EXTRACTOR (same dataset rows)")
    dc.add_argument("--clip", required=True, help="embedding set of the IMAGE_TEXT model (same dataset rows)")
    dc.add_argument("--text-model", required=True, help="the IMAGE_TEXT model (text encoder for captions)")
    dc.add_argument("--vocabulary", default="", help="caption vocabulary JSON (file or store URI; default: the benchmark world's)")
    dc.add_argument("--holdout", type=float, default=0.5, help="fraction of each class held out to validate the slices")
    dc.add_argument("--error-modes", type=int, default=None,
                    help="error modes per class besides the class direction (k-means clusters of its errors; 0 = off; default: the service's, 3)")
    dc.add_argument("--direction-captions", choices=["text-score", "aligned-images"], default="aligned-images",
                    help="caption directions by their most aligned images (default) or by the SVM's score on the captions' text embeddings (the paper's)")
    dc.add_argument("--no-evidence", action="store_true", help="skip top images / heatmaps / feature attacks")
    dc.add_argument("--name", default="", help="report id prefix (default: the predictions' embedding set)")
    dc.set_defaults(fn=cmd_discover)

    demo = sub.add_parser("demo", help="the main job: start the stack, register a demo dataset and model, embed, summarise")
    demo.set_defaults(fn=cmd_demo)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    from failurelens.clients.client import FailureLensError

    try:
        return int(ns.fn(ns) or 0)
    except FailureLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
