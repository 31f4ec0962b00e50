"""The mitigation paper's debug set (``001_…`` §4): a model's failures on a debug split (e.g. the
validation set), split per class into ``debug_seed`` (described, and the source of the prompts
that generate new training data) and ``debug_heldout`` (never used for the repair; it measures
whether the repair generalises to failures of the same kind).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from failurelens.discovery import params as P
from failurelens.discovery.validation import stratified_holdout
from failurelens.errors import InvalidData


class DebugSplitter(P.Estimator):
    """Split the failures of a model per class: ``seed_fraction`` of each class's failures (rounded;
    at least one left for debug_heldout) go to debug_seed, chosen at random (deterministic in
    ``seed``).

    Fitted attributes: ``failures_`` (positions of the failing rows), ``seed_`` and ``heldout_``
    (positions of the debug_seed and debug_heldout rows, sorted).
    """

    def __init__(self, seed_fraction: float = 0.5, seed: int = 0) -> None:
        self.seed_fraction = seed_fraction
        self.seed = seed

    def _checked_params(self) -> dict[str, Any]:
        return {"seed_fraction": P.fraction(self.seed_fraction, "seed_fraction", low_open=True), "seed": P.seed(self.seed)}

    def fit(self, labels: Any, predictions: Any) -> DebugSplitter:
        p = self.validate_params()
        y, yhat = np.asarray(labels), np.asarray(predictions)
        if y.ndim != 1 or y.shape != yhat.shape:
            raise InvalidData(f"labels {y.shape} and predictions {yhat.shape} must be aligned 1-d arrays")
        self.failures_ = np.flatnonzero(y != yhat)
        if len(self.failures_) == 0:
            raise InvalidData("the model makes no errors on these rows; there is nothing to debug")
        in_seed = stratified_holdout(y[self.failures_], p["seed_fraction"], p["seed"])
        self.seed_ = self.failures_[in_seed]
        self.heldout_ = self.failures_[~in_seed]
        return self
