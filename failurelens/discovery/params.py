"""Parameter checks shared by the discovery estimators (scikit-learn style).

Every estimator stores its parameters in ``__init__`` (the only place a default lives) and
checks them in its public ``validate_params()``, which ``fit`` (or the estimator's main method)
calls first. A bad value raises :class:`~failurelens.errors.InvalidParameter` naming the
parameter, which is also the name of the request field that sets it, so a service can validate
a request by building the estimator and calling ``validate_params()``.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any

from sklearn.base import BaseEstimator

from failurelens.errors import InvalidParameter


def is_int(v: Any) -> bool:
    return isinstance(v, (int, numbers.Integral)) and not isinstance(v, bool)


def is_real(v: Any) -> bool:
    return isinstance(v, (int, float, numbers.Real)) and not isinstance(v, bool)


def need(ok: bool, parameter: str, message: str) -> None:
    """Raise :class:`InvalidParameter` about ``parameter`` unless ``ok``."""
    if not ok:
        raise InvalidParameter(parameter, message)


def fraction(value: Any, parameter: str, *, low_open: bool = False, high_open: bool = True, note: str = "") -> float:
    """``value`` as a float in [0, 1) (or the interval the flags say), else InvalidParameter."""
    ok = is_real(value) and (value > 0.0 if low_open else value >= 0.0) and (value < 1.0 if high_open else value <= 1.0)
    interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
    need(ok, parameter, f"{parameter}={value!r}: use a number in {interval}{f' ({note})' if note else ''}")
    return float(value)


def positive_int(value: Any, parameter: str, minimum: int = 1, maximum: int | None = None) -> int:
    ok = is_int(value) and value >= minimum and (maximum is None or value <= maximum)
    span = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
    need(ok, parameter, f"{parameter}={value!r}: use an integer {span}")
    return int(value)


def seed(value: Any, parameter: str = "seed") -> int:
    need(is_int(value) and 0 <= value < 2**32, parameter, f"{parameter}={value!r}: use an integer in [0, 2**32)")
    return int(value)


class Estimator(BaseEstimator, metaclass=abc.ABCMeta):
    """Base of the discovery estimators: ``validate_params()`` is public and returns the checked
    parameters (a dict); subclasses implement ``_checked_params``."""

    @abc.abstractmethod
    def _checked_params(self) -> dict[str, Any]:
        """Check every parameter (raising InvalidParameter) and return them normalised."""

    def validate_params(self) -> dict[str, Any]:
        """The checked parameters; :class:`~failurelens.errors.InvalidParameter` names a bad one."""
        return self._checked_params()
