"""A classifier's ONNX graph with a new linear head: the same backbone, ``logits = features W^T + b``.

The registry's classifier contract has two outputs, ``logits`` [N,C] and ``features`` [N,D] (the
penultimate layer). :func:`replace_head` keeps the graph up to ``features``, drops whatever
computed the old ``logits`` (nodes and weights no other output needs) and computes ``logits`` with
one ``Gemm`` of the new weight [C,D] and bias [C]. :func:`check_head` runs the result in
onnxruntime and compares it with the head applied to its own ``features``.
"""

from __future__ import annotations

import numpy as np

from failurelens.errors import FailedPrecondition, InvalidArgument


def _prune(graph: object) -> None:
    """Remove nodes and initializers that no graph output needs (nodes are in topological order)."""
    import onnx

    g: onnx.GraphProto = graph  # type: ignore[assignment]
    needed = {o.name for o in g.output}
    keep = []
    for node in reversed(list(g.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
            for attr in node.attribute:  # subgraphs (If/Loop) read outer names too
                for sub in [attr.g, *attr.graphs]:
                    for n in sub.node:
                        needed.update(i for i in n.input if i)
    keep.reverse()
    del g.node[:]
    g.node.extend(keep)
    inits = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)


def replace_head(onnx_bytes: bytes, weight: np.ndarray, bias: np.ndarray) -> bytes:
    """The classifier graph with ``logits = features @ weight.T + bias``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_model_from_string(onnx_bytes)
    g = model.graph
    outputs = {o.name: o for o in g.output}
    if "logits" not in outputs or "features" not in outputs:
        raise FailedPrecondition("the model is not a CLASSIFIER graph with outputs 'logits' and 'features'", type="MODEL", subject="onnx")
    w = np.asarray(weight, dtype=np.float32)
    b = np.asarray(bias, dtype=np.float32).reshape(-1)
    if w.ndim != 2 or b.shape[0] != w.shape[0]:
        raise InvalidArgument(f"the head must be weight [C, D] and bias [C], got {w.shape} and {b.shape}", field="head")
    logits_out = outputs["logits"]
    old = "failurelens_replaced_logits"
    for node in g.node:  # the old head's result is renamed away, then pruned as unused
        node.output[:] = [old if o == "logits" else o for o in node.output]
    g.initializer.extend([numpy_helper.from_array(w, "failurelens_head_weight"), numpy_helper.from_array(b, "failurelens_head_bias")])
    g.node.append(
        helper.make_node("Gemm", ["features", "failurelens_head_weight", "failurelens_head_bias"], ["logits"], name="failurelens_head", transB=1)
    )
    dims = logits_out.type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value != w.shape[0]:
        raise InvalidArgument(f"the head has {w.shape[0]} classes but the model {dims[1].dim_value}", field="head")
    _prune(g)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def check_head(onnx_bytes: bytes, weight: np.ndarray, bias: np.ndarray, images: np.ndarray, tolerance: float = 1e-4) -> float:
    """Max abs difference between the graph's ``logits`` and the head applied to its ``features``
    on ``images``; FailedPrecondition above ``tolerance``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    logits, features = sess.run(["logits", "features"], {name: np.asarray(images, dtype=np.float32)})
    diff = float(np.abs(logits - (features @ np.asarray(weight, np.float32).T + np.asarray(bias, np.float32))).max())
    if not diff <= tolerance:
        raise FailedPrecondition(f"the new head's logits differ from features @ W.T + b by {diff:.3g} (> {tolerance})", type="MODEL", subject="onnx")
    return diff
