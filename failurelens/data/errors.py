"""Errors of the data layer for bad user input (manifests, images, models).

A :class:`ValidationError` means "the caller sent something we cannot use": it is
:class:`failurelens.errors.InvalidArgument` (INVALID_ARGUMENT, one field violation per
:class:`Violation`). Every message says what is wrong *and* what to change, e.g.::

    manifest row 17: label 12 is out of range; the class list has 10 classes (0..9)
"""

from __future__ import annotations

from failurelens.errors import MAX_VIOLATIONS, InvalidArgument, Violation, ViolationCollector

ValidationError = InvalidArgument

__all__ = ["MAX_VIOLATIONS", "ImageDecodeError", "ValidationError", "Violation", "ViolationCollector"]


class ImageDecodeError(InvalidArgument):
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

    def with_uri(self, uri: str) -> ImageDecodeError:
        """The same error naming ``uri``."""
        return ImageDecodeError(self.reason, kind=self.kind, uri=uri)
