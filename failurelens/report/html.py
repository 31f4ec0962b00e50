"""Rendering the report document into one HTML page (Jinja2 template, matplotlib plots).

The document (what :func:`failurelens.workflow.report_data.build_document` assembles)::

    {"title", "subtitle", "notes": [str],
     "overview": {"accuracy", "num_rows", "split", "classes": [{"name", "n", "accuracy", "error_rate",
                  "ber", "aler"}], "confusion": [[int]], "confused_pairs": [{"true", "pred", "count"}]},
     "modes": [{"class", "kind", "text", "caption", "validated", "q_value", "error_rate",
                "error_coverage", "importance", "size", "examples": [uri], "attribute"}],
     "classes": [{"name", "error_rate", "ber", "aler", "rules": [...], "directions": [...],
                  "backgrounds": [[name, count]], "evidence": [{"feature", "montage"}]}],
     "repair": None | {"table": [...], "slices": [...], "modes": [...], "lines": [str]}}

Every image (``examples``, ``aligned``, ``antialigned``, ``montage``) is named by a URI whose bytes
``images`` gives; they are embedded as data URIs (thumbnails), so the page needs no network.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
import numpy as np

THUMB = 96


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _thumbnail(data: bytes, size: int) -> bytes:
    """A PNG at most ``size`` pixels on its longer side (a PNG that already fits is kept as is)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.format == "PNG" and max(im.size) <= size:
            return data
        im = im.convert("RGB")
        im.thumbnail((size, size))
        out = io.BytesIO()
        im.save(out, format="PNG", compress_level=3)
        return out.getvalue()


def _figure_png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return _data_uri(buf.getvalue())


def _plots(doc: Mapping[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    ov = doc["overview"]
    classes = ov["classes"]
    names = [c["name"] for c in classes]
    k = len(names)
    shown = sorted(range(k), key=lambda i: -classes[i]["error_rate"])[:40]
    fig, ax = plt.subplots(figsize=(min(10, 1.5 + 0.35 * len(shown)), 3.2))
    ax.bar(range(len(shown)), [classes[i]["error_rate"] for i in shown], color="#c0392b")
    ax.set_xticks(range(len(shown)), [names[i] for i in shown], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("error rate")
    ax.set_title("error rate per class" + (f" (the {len(shown)} highest of {k})" if len(shown) < k else ""))
    out["error_rates"] = _figure_png(fig)
    if 1 < k <= 40:
        conf = np.asarray(ov["confusion"], dtype=float)
        norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(min(9, 2 + 0.4 * k), min(8, 1.6 + 0.4 * k)))
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("confusion matrix (row-normalised)")
        fig.colorbar(im, ax=ax, fraction=0.046)
        out["confusion"] = _figure_png(fig)
    peers = doc.get("peers")
    if peers:
        m = len(peers["models"])
        iou = np.asarray(peers["iou"], dtype=float).reshape(m, m)
        fig, ax = plt.subplots(figsize=(2.5 + 0.6 * m, 2 + 0.55 * m))
        im = ax.imshow(iou, cmap="magma", vmin=0, vmax=1)
        ax.set_xticks(range(m), peers["models"], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(m), peers["models"], fontsize=8)
        for i in range(m):
            for j in range(m):
                ax.text(j, i, f"{iou[i, j]:.2f}", ha="center", va="center", fontsize=8, color="white" if iou[i, j] < 0.6 else "black")
        ax.set_title("IoU of the models' failure sets")
        fig.colorbar(im, ax=ax, fraction=0.046)
        out["peers"] = _figure_png(fig)
    rep = doc.get("repair")
    if rep and rep.get("table"):
        sets = [s for s in ("test", "debug_seed", "debug_heldout") if s in rep["table"][0]["accuracy"]]
        rows = rep["table"]
        fig, ax = plt.subplots(figsize=(7.5, 3.2))
        width = 0.8 / len(rows)
        for j, r in enumerate(rows):
            ax.bar(np.arange(len(sets)) + j * width, [100 * r["accuracy"][s] for s in sets], width, label=r["strategy"])
        ax.set_xticks(np.arange(len(sets)) + 0.4 - width / 2, sets)
        ax.set_ylabel("accuracy %")
        ax.set_title("accuracy per evaluation set, by prompt strategy")
        ax.legend(fontsize=7, ncol=2)
        out["repair"] = _figure_png(fig)
        if rep.get("slices"):
            sl = rep["slices"]
            fig, ax = plt.subplots(figsize=(min(10, 2 + 0.5 * len(sl)), 3.2))
            x = np.arange(len(sl))
            ax.bar(x - 0.2, [s["before"] for s in sl], 0.4, label="before", color="#95a5a6")
            ax.bar(x + 0.2, [s["after"] for s in sl], 0.4, label="after", color="#27ae60")
            ax.set_xticks(x, [s["slice"] for s in sl], rotation=60, ha="right", fontsize=8)
            ax.set_ylabel("accuracy")
            ax.set_title("named slices on test: before -> after the repair")
            ax.legend(fontsize=8)
            out["slices"] = _figure_png(fig)
        for name, label in (("lambda", "lambda (weight of the generated images' loss)"), ("k", "k (failure backgrounds per class)")):
            rows = (rep.get("sweeps") or {}).get(name) or []
            if rows:
                fig, ax = plt.subplots(figsize=(4.6, 3.2))
                xs = [r["value"] for r in rows]
                for s_name in ("test", "debug_heldout"):
                    ax.plot(xs, [100 * r["accuracy"].get(s_name, 0) for r in rows], marker="o", label=s_name)
                ax.set_xlabel(label)
                ax.set_ylabel("accuracy %")
                ax.set_title(f"{name} sweep of the published strategy")
                ax.legend(fontsize=8)
                out[f"sweep_{name}"] = _figure_png(fig)
    return out


def render_report(doc: Mapping[str, Any], images: Callable[[str], bytes | None]) -> str:
    """The HTML page of a report document; ``images(uri)`` gives an image's bytes (None: missing)."""
    cache: dict[tuple[str, int], str] = {}

    def img(uri: str, size: int = THUMB) -> str:
        if (uri, size) not in cache:
            data = images(uri) if uri else None
            cache[uri, size] = _data_uri(_thumbnail(data, size)) if data else ""
        return cache[uri, size]

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("failurelens.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pct"] = lambda x: "-" if x is None else f"{100 * float(x):.1f}%"
    env.filters["num"] = lambda x, d=2: "-" if x is None else f"{float(x):.{d}f}"
    return env.get_template("report.html.j2").render(doc=doc, plots=_plots(doc), img=img)
