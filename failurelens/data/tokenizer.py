"""CLIP text tokenization for text-encoder models.

Wraps ``open_clip.tokenizer.SimpleTokenizer`` (the OpenAI CLIP BPE). Its vocabulary file
(``bpe_simple_vocab_16e6.txt.gz``) ships inside the ``open_clip`` package, so nothing is
downloaded. Output rows are ``[<start>, tokens..., <end>, 0, 0, ...]``; a text longer than the
context is cut and its last kept token replaced by ``<end>`` (open_clip's behaviour, which CLIP
text towers rely on: they pool at the arg-max token id, ``<end>``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from failurelens.data.errors import ValidationError

__all__ = ["ClipTokenizer", "DEFAULT_CONTEXT_LENGTH"]

DEFAULT_CONTEXT_LENGTH = 77
_MAX_TEXT_CHARS = 10_000


class ClipTokenizer:
    """``ClipTokenizer(context_length=77).encode(["a photo of a cat"])`` -> int64 ``[N, L]``.

    Thread-safe (one lock around the BPE cache). Importing ``open_clip`` takes a few seconds; it
    happens on construction, not on import of this module.
    """

    def __init__(self, context_length: int = DEFAULT_CONTEXT_LENGTH) -> None:
        if not isinstance(context_length, int) or isinstance(context_length, bool) or context_length < 2:
            raise ValidationError(f"context_length {context_length!r} must be an integer >= 2 (room for the start and end tokens)")
        from open_clip.tokenizer import SimpleTokenizer, default_bpe

        self.context_length = context_length
        self.bpe_path = default_bpe()
        self._tok = SimpleTokenizer(bpe_path=self.bpe_path, context_length=context_length)
        self._lock = threading.Lock()
        self.sot_token_id = int(self._tok.sot_token_id)
        self.eot_token_id = int(self._tok.eot_token_id)
        self.pad_token_id = 0
        self.vocab_size = int(self._tok.vocab_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids of ``texts`` as a contiguous int64 array ``[len(texts), context_length]``."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings; wrap a single text as [text]")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValidationError(f"text {i} is {type(t).__name__}, not a string")
            if len(t) > _MAX_TEXT_CHARS:
                raise ValidationError(
                    f"text {i} has {len(t)} characters; the limit is {_MAX_TEXT_CHARS} "
                    f"(only the first {self.context_length - 2} tokens are used anyway)"
                )
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        with self._lock:
            for i, t in enumerate(texts):
                ids = [self.sot_token_id, *self._tok.encode(t), self.eot_token_id]
                if len(ids) > self.context_length:
                    ids = ids[: self.context_length]
                    ids[-1] = self.eot_token_id
                out[i, : len(ids)] = ids
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of one row of token ids (special and padding tokens dropped)."""
        keep = [int(i) for i in ids if int(i) not in (self.sot_token_id, self.eot_token_id, self.pad_token_id)]
        with self._lock:
            return self._tok.decode(keep).strip()
