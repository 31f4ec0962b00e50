"""The typed errors of failurelens: what went wrong, and what it is about.

Library code (data, discovery, store, catalog, triton) raises these and knows nothing of gRPC.
Each class names the canonical status it stands for (``canonical_code``, a ``google.rpc.Code``
name) and carries what a caller needs to fix the problem: the request ``field`` of an invalid
argument (with itemised :class:`Violation` rows), the ``subject`` of a failed precondition, the
``resource_type`` / ``name`` of a missing or existing resource. The service runtime maps them to
gRPC statuses with rich details in exactly one place (:mod:`failurelens.runtime.status`).

Every message says what is wrong *and* what to change, e.g.::

    holdout_fraction=1.5: use a number in [0, 1) (0 disables the hold-out)

:class:`InvalidArgument` and :class:`FailedPrecondition` are also ``ValueError``\\ s, so that
scikit-learn-style code that expects ``ValueError`` for bad parameters or data keeps working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import ClassVar

#: Violations kept on one error (all are counted).
MAX_VIOLATIONS = 100
#: Violations spelled out in a summary message.
_MESSAGE_VIOLATIONS = 5


@dataclasses.dataclass(frozen=True)
class Violation:
    """One thing wrong with the input: ``field`` names it (``manifest.label``, ``image``, a request
    field), ``description`` says what is wrong and how to fix it, ``row`` is the 0-based manifest
    row where there is one and ``uri`` the image or object concerned."""

    field: str
    description: str
    row: int | None = None
    uri: str | None = None


class Error(Exception):
    """Base class. ``message`` says what is wrong and what to do; ``canonical_code`` is the status."""

    canonical_code: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(Error, ValueError):
    """The caller sent something unusable: a parameter out of range, a bad manifest row, a bad key.

    ``field`` is the offending request field or parameter (empty when the violations name theirs);
    ``violations`` itemise the problems (the first :data:`MAX_VIOLATIONS`), ``violation_count``
    counts all of them.
    """

    canonical_code = "INVALID_ARGUMENT"

    def __init__(self, message: str, violations: Iterable[Violation] | None = None, *, field: str = "", violation_count: int | None = None) -> None:
        super().__init__(message)
        vs = list(violations or ())
        if field and not vs:
            vs = [Violation(field, message)]
        self.field = field
        self.violations: list[Violation] = vs[:MAX_VIOLATIONS]
        #: the number of violations found, including those not kept
        self.violation_count = max(violation_count if violation_count is not None else len(vs), len(vs))

    @classmethod
    def about(cls, field: str, description: str) -> InvalidArgument:
        """One bad field: the message names it and says what to fix."""
        return cls(f"{field}: {description}", field=field)

    @property
    def truncated(self) -> bool:
        """True when more violations were found than are kept."""
        return self.violation_count > len(self.violations)

    def for_field(self, field: str) -> InvalidArgument:
        """The same error, about request field ``field`` (its violations without a field get it)."""
        vs = [v if v.field else dataclasses.replace(v, field=field) for v in self.violations] or [Violation(field, self.message)]
        return InvalidArgument(f"{field}: {self.message}", vs, field=field, violation_count=self.violation_count)


class InvalidParameter(InvalidArgument):
    """A parameter of an algorithm (an estimator's ``__init__`` argument) is out of its range.

    ``field`` is the parameter's name, which is also the name of the request field that sets it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message, field=parameter)


class FailedPrecondition(Error, ValueError):
    """The request is well formed but the system is not in a state to run it: a model of the wrong
    kind, stored arrays that do not align, a report without rules. ``subject`` is the resource
    concerned, ``type`` its kind (``MODEL``, ``EMBEDDING``, ...)."""

    canonical_code = "FAILED_PRECONDITION"

    def __init__(self, message: str, *, type: str = "", subject: str = "") -> None:
        super().__init__(message)
        self.type = type
        self.subject = subject


class InvalidData(FailedPrecondition):
    """Arrays handed to an algorithm cannot be analysed (misaligned rows, NaN, wrong shape or dtype).

    From a library caller's point of view a ``ValueError`` about its inputs; for a service, whose
    inputs are stored artifacts, a failed precondition on them."""

    def __init__(self, message: str, *, subject: str = "") -> None:
        super().__init__(message, type="DATA", subject=subject)


class _ResourceError(Error):
    """An error about one named resource (``resource_type`` ``name``)."""

    def __init__(self, message: str, *, resource_type: str = "", name: str = "") -> None:
        super().__init__(message)
        self.resource_type = resource_type
        self.name = name


class NotFound(_ResourceError, LookupError):
    canonical_code = "NOT_FOUND"

    @classmethod
    def resource(cls, resource_type: str, name: str, hint: str = "") -> NotFound:
        return cls(f"{resource_type} {name!r} not found" + (f"; {hint}" if hint else ""), resource_type=resource_type, name=name)


class AlreadyExists(_ResourceError):
    canonical_code = "ALREADY_EXISTS"

    @classmethod
    def resource(cls, resource_type: str, name: str) -> AlreadyExists:
        return cls(f"{resource_type} {name!r} already exists; choose another name or set overwrite=true", resource_type=resource_type, name=name)


class Aborted(_ResourceError):
    """A concurrent writer changed the resource first; retrying the call is safe."""

    canonical_code = "ABORTED"


class PermissionDenied(Error):
    canonical_code = "PERMISSION_DENIED"


class Unauthenticated(Error):
    canonical_code = "UNAUTHENTICATED"


class ResourceExhausted(Error):
    canonical_code = "RESOURCE_EXHAUSTED"


class Unavailable(Error):
    canonical_code = "UNAVAILABLE"


class DeadlineExceeded(Error):
    canonical_code = "DEADLINE_EXCEEDED"


class Cancelled(Error):
    canonical_code = "CANCELLED"


class Unimplemented(Error):
    canonical_code = "UNIMPLEMENTED"


class Internal(Error):
    """A failure of a dependency that the caller cannot fix (an LLM endpoint, a store write)."""


class ViolationCollector:
    """Accumulates violations (keeping the first :data:`MAX_VIOLATIONS`, counting all)."""

    def __init__(self, limit: int = MAX_VIOLATIONS) -> None:
        self.limit = limit
        self.violations: list[Violation] = []
        self.count = 0

    def add(self, field: str, description: str, row: int | None = None, uri: str | None = None) -> None:
        self.count += 1
        if len(self.violations) < self.limit:
            self.violations.append(Violation(field=field, description=description, row=row, uri=uri))

    def extend(self, violations: Iterable[Violation]) -> None:
        for v in violations:
            self.add(v.field, v.description, v.row, v.uri)

    def __bool__(self) -> bool:
        return self.count > 0

    def __len__(self) -> int:
        return self.count

    def error(self, summary: str) -> InvalidArgument:
        """An :class:`InvalidArgument` whose message is ``summary`` followed by the first violations."""
        shown = [v.description for v in self.violations[:_MESSAGE_VIOLATIONS]]
        message = summary
        if shown:
            message += ": " + "; ".join(shown)
        if self.count > len(shown):
            message += f"; ... and {self.count - len(shown)} more"
        return InvalidArgument(message, self.violations, violation_count=self.count)

    def raise_if_any(self, summary: str) -> None:
        if self.count:
            raise self.error(summary)
