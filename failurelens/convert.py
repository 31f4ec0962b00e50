"""Conversions between API messages and the pure library's dataclasses."""

from __future__ import annotations

from collections.abc import Sequence

from failurelens import errors
from failurelens.data import images as img
from failurelens.v1 import common_pb2

#: rows spelled out in a RowErrors message (all are counted)
MAX_ROW_ERRORS = 100

_RESIZE = {
    common_pb2.RESIZE_MODE_UNSPECIFIED: "stretch",
    common_pb2.RESIZE_MODE_STRETCH: "stretch",
    common_pb2.RESIZE_MODE_SHORTER_SIDE_CENTER_CROP: "shorter_side_center_crop",
}


def preprocessing_from_proto(pp: common_pb2.Preprocessing, graph_hw: tuple[int, int] | None) -> img.Preprocessing:
    """The library Preprocessing for a message; input size defaults to the graph's fixed H,W."""
    h, w = pp.input_height, pp.input_width
    if (h == 0) != (w == 0):
        raise errors.InvalidArgument.about("preprocessing.input_height", "set both input_height and input_width, or neither to take the ONNX graph's")
    if h == 0:
        if graph_hw is None or min(graph_hw) <= 0:
            raise errors.InvalidArgument.about(
                "preprocessing.input_height", "the ONNX input has dynamic height/width; declare input_height and input_width"
            )
        h, w = graph_hw
    elif graph_hw is not None and min(graph_hw) > 0 and (h, w) != tuple(graph_hw):
        raise errors.InvalidArgument.about(
            "preprocessing.input_height",
            f"declared input size {h}x{w} differs from the ONNX input's fixed {graph_hw[0]}x{graph_hw[1]}; declare {graph_hw[0]}x{graph_hw[1]}",
        )
    if len(pp.mean) != 3 or len(pp.std) != 3:
        raise errors.InvalidArgument.about("preprocessing.mean", f"mean and std must have 3 values each (RGB); got {len(pp.mean)} and {len(pp.std)}")
    return img.Preprocessing(
        input_size=(h, w),
        mean=tuple(pp.mean),
        std=tuple(pp.std),
        resize=_RESIZE.get(pp.resize, "stretch"),
        interpolation=pp.interpolation or "bilinear",
        crop_pct=pp.crop_pct or 1.0,
    )


def preprocessing_to_proto(pp: img.Preprocessing) -> common_pb2.Preprocessing:
    resize = common_pb2.RESIZE_MODE_SHORTER_SIDE_CENTER_CROP if pp.resize == "shorter_side_center_crop" else common_pb2.RESIZE_MODE_STRETCH
    return common_pb2.Preprocessing(
        input_height=pp.input_size[0],
        input_width=pp.input_size[1],
        mean=pp.mean,
        std=pp.std,
        resize=resize,
        crop_pct=pp.crop_pct,
        interpolation=pp.interpolation,
    )


def row_errors_pb(rows: Sequence[tuple[int, str, str]], total: int | None = None) -> common_pb2.RowErrors:
    """RowErrors from (row, uri, reason) tuples, keeping the first MAX_ROW_ERRORS."""
    out = common_pb2.RowErrors(total=len(rows) if total is None else total)
    for row, uri, reason in list(rows)[:MAX_ROW_ERRORS]:
        out.rows.add(row=row, uri=uri or "", reason=reason)
    return out
