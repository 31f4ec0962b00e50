"""Retrain the linear classification head of a classifier on its frozen features.

After *Identifying and Mitigating Model Failures through Few-shot CLIP-aided Diffusion
Generation* (Chegini & Feizi), Eq. 1 and Table 4: only the linear head is trained, on the
features of the original training data and of new ``debug_train`` images made for the model's
failures, with the loss

    L = CE(original_train) + lambda * CE(debug_train)

(each term the mean over its set), SGD with momentum and weight decay.

:class:`HeadRetrainer` is scikit-learn style: parameters in ``__init__`` (validated in ``fit``),
``fit`` returns ``self``, learned state ends in ``_``; :meth:`HeadRetrainer.result` gives the
learned head as a :class:`RetrainedHead` dataclass in the *raw* feature space (weight [C, D],
bias [C]), so it drops into the model's own ``head`` layer / ONNX graph unchanged.

Starting point (``init``):

* ``"own"`` - the model's own head (``fit(..., init_weight=W, init_bias=b)``). With a small
  budget the head is *repaired*: the change comes from the new data, not from refitting.
* ``"new"`` - a head trained from zero weights. The objective is convex, so with a large enough
  budget both starts reach the same head; part of a new head's gain over the model's own head is
  then the refit on the original data alone, whatever ``debug_train`` holds.

``standardize`` (default on) trains on features standardised with the original training data's
mean and standard deviation (a change of variables: the own head is mapped in exactly, and the
learned head is mapped back), which makes one learning rate work for features of any scale.
``batch_size=0`` (default) is full-batch gradient descent: one step per epoch, deterministic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from failurelens.discovery import params as P
from failurelens.errors import InvalidData

__all__ = ["EpochMetrics", "HeadRetrainer", "RetrainedHead", "head_accuracy"]

INITS = ("own", "new")
DEVICES = ("auto", "cpu", "cuda")


@dataclasses.dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    loss: float
    train_accuracy: float
    debug_train_accuracy: float  # NaN without debug_train


@dataclasses.dataclass
class RetrainedHead:
    """A linear head in the raw feature space: ``logits = features @ weight.T + bias``."""

    weight: np.ndarray  # [C, D] float32
    bias: np.ndarray  # [C] float32
    params: dict[str, Any]
    history: list[EpochMetrics]

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32) @ self.weight.T + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.logits(features).argmax(1)


def head_accuracy(weight: np.ndarray, bias: np.ndarray, features: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the head (weight [C, D], bias [C]) on features [N, D]; NaN for no rows."""
    if len(labels) == 0:
        return float("nan")
    pred = (np.asarray(features, dtype=np.float64) @ np.asarray(weight, dtype=np.float64).T + np.asarray(bias, dtype=np.float64)).argmax(1)
    return float((pred == np.asarray(labels)).mean())


def _features(name: str, x: Any) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[0] == 0:
        raise InvalidData(f"{name} must be a 2-D array [rows, features] with rows, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
        raise InvalidData(f"{name} must hold finite numbers")
    return a.astype(np.float64)


def _labels(name: str, y: Any, n: int, num_classes: int | None) -> np.ndarray:
    a = np.asarray(y).reshape(-1)
    if a.shape[0] != n:
        raise InvalidData(f"{name} has {a.shape[0]} labels for {n} feature rows")
    if n and not np.issubdtype(a.dtype, np.integer):
        raise InvalidData(f"{name} must hold integer class indices, got dtype {a.dtype}")
    if n and (a.min() < 0 or (num_classes is not None and a.max() >= num_classes)):
        raise InvalidData(f"{name} holds class indices outside 0..{(num_classes or 0) - 1}")
    return a.astype(np.int64)


class HeadRetrainer(P.Estimator):
    """Train a linear head on frozen features: ``CE(train) + lam * CE(debug_train)``.

    Parameters (paper defaults where it has them):

    * ``lam`` - weight of the debug_train loss (0.5); 0 refits on the original data alone.
    * ``epochs`` - passes over the original training data (full batch: steps).
    * ``lr``, ``momentum``, ``weight_decay`` - SGD (0.2, 0.9, 5e-4; decay on weight and bias).
    * ``batch_size`` - 0: full batch; else mini-batches of the training data, each paired with
      a slice of debug_train so that one epoch covers both once.
    * ``standardize`` - train on standardised features (see the module doc).
    * ``init`` - ``"own"`` (needs ``init_weight``/``init_bias`` in ``fit``) or ``"new"`` (zeros).
    * ``seed`` - mini-batch order.
    * ``device`` - ``"auto"`` (CUDA when torch sees a GPU, else CPU), ``"cpu"`` or ``"cuda"``;
      the results agree across devices to float64 rounding.

    Fitted: ``coef_`` [C, D], ``intercept_`` [C] (raw feature space), ``mean_``/``scale_`` (the
    standardisation, zeros/ones when off), ``n_classes_``, ``history_`` (one
    :class:`EpochMetrics` per epoch).
    """

    def __init__(
        self,
        lam: float = 0.5,
        epochs: int = 100,
        lr: float = 0.2,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        batch_size: int = 0,
        standardize: bool = True,
        init: str = "own",
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.lam = lam
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.standardize = standardize
        self.init = init
        self.seed = seed
        self.device = device

    def _checked_params(self) -> dict[str, Any]:
        need = P.need
        for name in ("lam", "weight_decay", "momentum"):
            v = getattr(self, name)
            need(P.is_real(v) and math.isfinite(v) and v >= 0, name, f"{name}={v!r}: use a finite number >= 0")
        need(self.momentum < 1.0, "momentum", f"momentum={self.momentum!r}: use a number below 1")
        need(P.is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0, "lr", f"lr={self.lr!r}: use a positive number")
        for name in ("epochs", "batch_size", "seed"):
            v = getattr(self, name)
            need(P.is_int(v) and v >= 0, name, f"{name}={v!r}: use an integer >= 0")
        need(self.init in INITS, "init", f"init={self.init!r}: use one of {INITS}")
        need(self.device in DEVICES, "device", f"device={self.device!r}: use one of {DEVICES}")
        need(isinstance(self.standardize, (bool, np.bool_)), "standardize", f"standardize={self.standardize!r}: use true or false")
        return self.get_params()

    def fit(
        self,
        X: Any,
        y: Any,
        X_debug: Any = None,
        y_debug: Any = None,
        *,
        init_weight: Any = None,
        init_bias: Any = None,
        num_classes: int | None = None,
        on_epoch: Callable[[EpochMetrics], None] | None = None,
    ) -> HeadRetrainer:
        """Fit on the original training features ``X`` [N, D] / labels ``y`` and the optional
        debug_train features ``X_debug`` [M, D] / labels ``y_debug``. The number of classes comes
        from ``init_weight``, else ``num_classes``, else the largest label + 1."""
        import torch
        from torch.nn import functional as F

        self.validate_params()
        x = _features("X", X)
        d = x.shape[1]
        w0 = b0 = None
        if self.init == "own":
            if init_weight is None or init_bias is None:
                raise InvalidData('init="own" needs init_weight [C, D] and init_bias [C] (the model\'s own head)')
            w0 = np.asarray(init_weight, dtype=np.float64)
            b0 = np.asarray(init_bias, dtype=np.float64).reshape(-1)
            if w0.ndim != 2 or w0.shape[1] != d or b0.shape[0] != w0.shape[0]:
                raise InvalidData(f"own head of shapes {w0.shape} / {b0.shape} does not fit {d} features")
            if not (np.all(np.isfinite(w0)) and np.all(np.isfinite(b0))):
                raise InvalidData("the own head holds NaN or infinite values")
            c = w0.shape[0]
            if num_classes is not None and num_classes != c:
                raise InvalidData(f"num_classes {num_classes} != the own head's {c} classes")
        elif init_weight is not None or init_bias is not None:
            raise InvalidData('init_weight/init_bias are only used with init="own"')
        else:
            c = num_classes
        yl = _labels("y", y, len(x), c)
        has_debug = X_debug is not None
        if has_debug != (y_debug is not None):
            raise InvalidData("give X_debug and y_debug together")
        if has_debug and np.asarray(X_debug).shape[0] > 0:
            xd = _features("X_debug", X_debug)
            if xd.shape[1] != d:
                raise InvalidData(f"X_debug has {xd.shape[1]} features, X has {d}")
            yd = _labels("y_debug", y_debug, len(xd), c)
        else:
            xd, yd = np.zeros((0, d)), np.zeros((0,), np.int64)
        if c is None:
            c = int(max(yl.max(), yd.max() if len(yd) else 0)) + 1
        if c < 2:
            raise InvalidData("need at least two classes")

        mean = x.mean(0) if self.standardize else np.zeros(d)
        scale = x.std(0) if self.standardize else np.ones(d)
        scale = np.where(scale > 1e-8, scale, 1.0)
        z, zd = (x - mean) / scale, (xd - mean) / scale
        if w0 is not None:  # the own head in standardised coordinates: W' = W * s, b' = b + W @ m
            ws, bs = w0 * scale, b0 + w0 @ mean
        else:
            ws, bs = np.zeros((c, d)), np.zeros(c)

        dt = torch.float64
        dev = torch.device("cuda" if self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available()) else "cpu")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InvalidData('device="cuda" but torch sees no GPU here; use "auto" or "cpu"')
        self.device_ = dev.type
        W = torch.tensor(ws, dtype=dt, device=dev, requires_grad=True)
        B = torch.tensor(bs, dtype=dt, device=dev, requires_grad=True)
        opt = torch.optim.SGD([W, B], lr=float(self.lr), momentum=float(self.momentum), weight_decay=float(self.weight_decay))
        Z, Y = torch.tensor(z, dtype=dt, device=dev), torch.tensor(yl, device=dev)
        ZD, YD = torch.tensor(zd, dtype=dt, device=dev), torch.tensor(yd, device=dev)
        lam = float(self.lam)
        n, m = len(Z), len(ZD)
        gen = torch.Generator().manual_seed(int(self.seed))
        history: list[EpochMetrics] = []
        for ep in range(int(self.epochs)):
            if self.batch_size == 0 or self.batch_size >= n:
                parts = [(torch.arange(n, device=dev), torch.arange(m, device=dev))]
            else:
                order = torch.randperm(n, generator=gen).to(dev)
                steps = math.ceil(n / self.batch_size)
                dorder = (torch.randperm(m, generator=gen) if m else torch.zeros(0, dtype=torch.long)).to(dev)
                per = math.ceil(m / steps) if m else 0
                parts = [(order[s * self.batch_size : (s + 1) * self.batch_size], dorder[s * per : (s + 1) * per]) for s in range(steps)]
            tot = correct = dcorrect = 0.0
            for ti, di in parts:
                logits = Z[ti] @ W.T + B
                loss = F.cross_entropy(logits, Y[ti])
                if lam > 0 and len(di):
                    dlogits = ZD[di] @ W.T + B
                    loss = loss + lam * F.cross_entropy(dlogits, YD[di])
                    dcorrect += float((dlogits.argmax(1) == YD[di]).sum())
                elif len(di):
                    with torch.no_grad():
                        dcorrect += float(((ZD[di] @ W.T + B).argmax(1) == YD[di]).sum())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(ti)
                correct += float((logits.argmax(1) == Y[ti]).sum())
            em = EpochMetrics(epoch=ep + 1, loss=tot / n, train_accuracy=correct / n, debug_train_accuracy=(dcorrect / m) if m else float("nan"))
            history.append(em)
            if on_epoch is not None:
                on_epoch(em)
        ws, bs = W.detach().cpu().numpy(), B.detach().cpu().numpy()
        self.coef_ = (ws / scale).astype(np.float32)  # back to raw features: W = W' / s, b = b' - W' @ (m / s)
        self.intercept_ = (bs - ws @ (mean / scale)).astype(np.float32)
        self.mean_, self.scale_ = mean, scale
        self.n_classes_ = c
        self.history_ = history
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise InvalidData("this HeadRetrainer is not fitted yet; call fit first")

    def decision_function(self, X: Any) -> np.ndarray:
        self._check_fitted()
        x = _features("X", X)
        if x.shape[1] != self.coef_.shape[1]:
            raise InvalidData(f"X has {x.shape[1]} features, the head {self.coef_.shape[1]}")
        return x @ self.coef_.T.astype(np.float64) + self.intercept_.astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        return self.decision_function(X).argmax(1)

    def score(self, X: Any, y: Any) -> float:
        return float((self.predict(X) == np.asarray(y).reshape(-1)).mean())

    def result(self) -> RetrainedHead:
        self._check_fitted()
        return RetrainedHead(weight=self.coef_.copy(), bias=self.intercept_.copy(), params=self.get_params(), history=list(self.history_))
