"""Request fields to library estimators: how every analysis service reads its tunable fields.

A tunable request field has the name of the estimator parameter it sets and is ``optional`` in
the proto (or repeated); when it is unset (or empty) the estimator's own ``__init__`` default
applies, so a default lives in exactly one place. The estimator's public ``validate_params()``
checks the values before any work starts and names a bad field (INVALID_ARGUMENT).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from google.protobuf import message

E = TypeVar("E")


def tunable_fields(request_type: type[message.Message], estimator: type) -> list[str]:
    """The request fields that set parameters of ``estimator`` (same name; optional or repeated)."""
    names = set(inspect.signature(estimator.__init__).parameters) - {"self"}
    return [f.name for f in request_type.DESCRIPTOR.fields if f.name in names and (f.has_presence or f.is_repeated)]


def estimator(cls: Callable[..., E], request: message.Message, convert: Mapping[str, Callable[[Any], Any]] | None = None, **fixed: Any) -> E:
    """``cls(**set tunable fields of request, **fixed)``, its parameters validated.

    ``convert`` maps a field to a function of its value (e.g. enum values to the estimator's
    names); ``fixed`` are parameters the service sets itself (e.g. worker processes)."""
    convert = convert or {}
    kw: dict[str, Any] = {}
    for name in tunable_fields(type(request), cls):  # type: ignore[arg-type]
        if name in fixed:
            continue
        field = request.DESCRIPTOR.fields_by_name[name]
        value = getattr(request, name)
        if field.is_repeated:
            if not len(value):
                continue
            value = list(value)
        elif not request.HasField(name):
            continue
        kw[name] = convert[name](value) if name in convert else value
    est = cls(**kw, **fixed)  # a dataclass of settings validates itself here
    if hasattr(est, "validate_params"):
        est.validate_params()
    return est
