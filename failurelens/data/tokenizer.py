"""CLIP text tokenization for text-encoder models.

Wraps ``open_clip.tokenizer.SimpleTokenizer`` (the OpenAI CLIP BPE). Its vocabulary file
(``bpe_simple_vocab_16e6.txt.gz``) ships inside the ``open_clip`` package, so nothing is
downloaded. Output rows are ``[<start>, tokens..., <end>, 0, 0, ...]``; a text longer than the
context is cut and its last kept token replaced by ``<end>`` (open_clip's behaviour, which CLIP
text towers rely on: they pool at the arg-max token id, ``<end>``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from failurelens.data.errors import ValidationError

__all__ = ["DEFAULT_CONTEXT_LENGTH", "MAX_TEXT_CHARS", "ClipTokenizer"]

DEFAULT_CONTEXT_LENGTH = 77
#: the longest text accepted (a caption or a prompt is far shorter)
MAX_TEXT_CHARS = 10_000
#: byte symbols of one word given to BPE (its cost grows with the square of the length; tokens past
#: the context are dropped anyway, so a longer word's tail cannot matter)
MAX_WORD_SYMBOLS = 128
#: entries of the BPE cache before it starts afresh (bounded memory under any input)
_CACHE_ENTRIES = 50_000


class _BoundedCache(dict):  # type: ignore[type-arg]
    """open_clip's BPE cache with a size bound: cleared (keeping the special tokens) when full."""

    def __init__(self, initial: dict[str, str]) -> None:
        super().__init__(initial)
        self._keep = dict(initial)

    def __setitem__(self, key: str, value: str) -> None:
        if len(self) >= _CACHE_ENTRIES:
            self.clear()
            self.update(self._keep)
        super().__setitem__(key, value)


class ClipTokenizer:
    """``ClipTokenizer(context_length=77).encode(["a photo of a cat"])`` -> int64 ``[N, L]``.

    Thread-safe without a lock (calls share only the bounded BPE cache, whose entries are
    immutable), and bounded work per text: words longer than :data:`MAX_WORD_SYMBOLS` byte
    symbols are cut and a text stops being tokenized once its context is full, so one request
    of pathological texts cannot stall others. Importing ``open_clip`` takes a few seconds; it
    happens on construction, not on import of this module.
    """

    def __init__(self, context_length: int = DEFAULT_CONTEXT_LENGTH) -> None:
        if not isinstance(context_length, int) or isinstance(context_length, bool) or context_length < 2:
            raise ValidationError(f"context_length {context_length!r} must be an integer >= 2 (room for the start and end tokens)")
        from open_clip.tokenizer import SimpleTokenizer, default_bpe

        self.context_length = context_length
        self.bpe_path = default_bpe()
        self._tok = SimpleTokenizer(bpe_path=self.bpe_path, context_length=context_length)
        self._tok.cache = _BoundedCache(self._tok.cache)
        self.sot_token_id = int(self._tok.sot_token_id)
        self.eot_token_id = int(self._tok.eot_token_id)
        self.pad_token_id = 0
        self.vocab_size = int(self._tok.vocab_size)

    def encode(self, texts: Sequence[str], check: Callable[[], None] | None = None) -> np.ndarray:
        """Token ids of ``texts`` as a contiguous int64 array ``[len(texts), context_length]``;
        ``check()`` is called every few texts and may raise to stop (cancellation, deadline)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings; wrap a single text as [text]")
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValidationError(f"text {i} is {type(t).__name__}, not a string", field="texts")
            if len(t) > MAX_TEXT_CHARS:
                raise ValidationError(
                    f"text {i} has {len(t)} characters; the limit is {MAX_TEXT_CHARS} "
                    f"(only the first {self.context_length - 2} tokens are used anyway)",
                    field="texts",
                )
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for i, t in enumerate(texts):
            if check is not None and i % 32 == 0:
                check()
            ids = [self.sot_token_id, *self._bpe_ids(t), self.eot_token_id]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot_token_id
            out[i, : len(ids)] = ids
        return out

    def _bpe_ids(self, text: str) -> list[int]:
        """open_clip's ``SimpleTokenizer.encode``, stopping once the context is full."""
        tok: Any = self._tok
        want = self.context_length - 1  # one more than fits: the caller cuts and ends with <end>
        ids: list[int] = []
        for word in tok.pat.findall(tok.clean_fn(text)):
            symbols = "".join(tok.byte_encoder[b] for b in word.encode("utf-8"))[:MAX_WORD_SYMBOLS]
            ids.extend(tok.encoder[piece] for piece in tok.bpe(symbols).split(" "))
            if len(ids) >= want:
                break
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of one row of token ids (special and padding tokens dropped)."""
        keep = [int(i) for i in ids if int(i) not in (self.sot_token_id, self.eot_token_id, self.pad_token_id)]
        return str(self._tok.decode(keep)).strip()
