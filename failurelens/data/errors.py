"""Errors raised by the data layer for bad user input (manifests, images, models).

A :class:`ValidationError` means "the caller sent something we cannot use". Services map it to
gRPC ``INVALID_ARGUMENT`` with a ``google.rpc.BadRequest`` detail carrying one field violation
per :class:`Violation`. Every message says what is wrong *and* what to change, e.g.::

    manifest row 17: label 12 is out of range; the class list has 10 classes (0..9)

At most :data:`MAX_VIOLATIONS` violations are kept; :attr:`ValidationError.violation_count`
counts all of them.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

#: Violations kept on one error (all are counted).
MAX_VIOLATIONS = 100
#: Violations spelled out in the error message itself.
_MESSAGE_VIOLATIONS = 5


@dataclasses.dataclass(frozen=True)
class Violation:
    """One thing wrong with the input.

    ``field`` names the offending field (``manifest.label``, ``image``, ``model.outputs``, ...),
    ``description`` says what is wrong and how to fix it, ``row`` is the 0-based manifest row
    where there is one and ``uri`` the image or object concerned.
    """

    field: str
    description: str
    row: int | None = None
    uri: str | None = None


class ValidationError(Exception):
    """Bad user input. ``message`` says what is wrong and what to fix; ``violations`` itemises it."""

    def __init__(
        self,
        message: str,
        violations: Iterable[Violation] | None = None,
        *,
        violation_count: int | None = None,
    ) -> None:
        vs = list(violations or ())
        count = max(violation_count if violation_count is not None else len(vs), len(vs))
        super().__init__(message)
        self.message = message
        self.violations: list[Violation] = vs[:MAX_VIOLATIONS]
        #: the number of violations found, including those not kept
        self.violation_count = count

    @property
    def truncated(self) -> bool:
        """True when more violations were found than are kept."""
        return self.violation_count > len(self.violations)

    def __str__(self) -> str:
        return self.message


class ImageDecodeError(ValidationError):
    """An image could not be used.

    ``kind`` is one of ``not_an_image``, ``unsupported_format``, ``truncated``, ``corrupt``,
    ``too_large``, ``empty`` (zero width or height, or zero bytes); ``reason`` is the human text.
    """

    KINDS = ("not_an_image", "unsupported_format", "truncated", "corrupt", "too_large", "empty")

    def __init__(self, reason: str, *, kind: str = "corrupt", uri: str | None = None) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown ImageDecodeError kind {kind!r}")
        self.reason = reason
        self.kind = kind
        self.uri = uri
        message = f"{uri}: {reason}" if uri else reason
        super().__init__(message, [Violation(field="image", description=reason, uri=uri)])

    def with_uri(self, uri: str) -> "ImageDecodeError":
        """The same error naming ``uri``."""
        return ImageDecodeError(self.reason, kind=self.kind, uri=uri)


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

    def error(self, summary: str) -> ValidationError:
        """A :class:`ValidationError` whose message is ``summary`` followed by the first violations."""
        shown = [v.description for v in self.violations[:_MESSAGE_VIOLATIONS]]
        message = summary
        if shown:
            message += ": " + "; ".join(shown)
        if self.count > len(shown):
            message += f"; ... and {self.count - len(shown)} more"
        return ValidationError(message, self.violations, violation_count=self.count)

    def raise_if_any(self, summary: str) -> None:
        if self.count:
            raise self.error(summary)
