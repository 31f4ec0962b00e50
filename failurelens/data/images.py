"""Image decoding and classifier preprocessing.

Decoding (:func:`decode_image`) accepts PNG and JPEG only and refuses, with an
:class:`~failurelens.data.errors.ImageDecodeError` whose ``kind`` names the problem:

* ``empty`` - zero bytes, or a header declaring zero width or height;
* ``not_an_image`` - bytes no image decoder recognises;
* ``unsupported_format`` - a real image in another format (GIF, WebP, BMP, TIFF, HEIC, ...);
  the message names the format found;
* ``too_large`` - more than ``max_pixels`` pixels. The dimensions are read from the file header
  (PNG ``IHDR`` / JPEG ``SOFn``) *before* anything is decoded, so a 50-megapixel image is
  refused without allocating its pixels;
* ``truncated`` - the pixel data ends early (the whole image is decoded eagerly with Pillow's
  ``LOAD_TRUNCATED_IMAGES`` left at ``False``; a PNG missing its ``IEND`` chunk counts too);
* ``corrupt`` - anything else the decoder rejects.

The decoded image is converted to 8-bit RGB the way ``torchvision.datasets.ImageFolder``'s loader
does (``Image.convert("RGB")``: alpha is dropped, not composited; palette expanded; EXIF
orientation is *not* applied), except that 16/32-bit grayscale is scaled to 8 bits instead of
being clipped.

Preprocessing (:func:`preprocess`) turns decoded images into a float32 NCHW batch:

* ``resize="stretch"``: ``img.resize((W, H), resample)`` - exactly what torchvision's
  ``Resize((H, W), interpolation, antialias=True)`` does to a PIL image (Pillow's resampling
  filters always antialias when downscaling);
* ``resize="shorter_side_center_crop"``: scale so the image covers ``(H / crop_pct,
  W / crop_pct)`` keeping the aspect ratio, then take the centred ``(H, W)`` crop. For a square
  input this is exactly torchvision's ``Resize(floor(H / crop_pct)) + CenterCrop(H)`` (ImageNet
  style is ``crop_pct=0.875``: 256 then 224; CLIP style is ``crop_pct=1``);
* then ``x = uint8 * scale`` (``ToTensor`` when ``scale=1/255``) and ``(x - mean) / std``
  (``Normalize``), all in float32.

Resizing happens on the 8-bit image (as with torchvision on PIL images), so for PIL inputs the
result equals the torchvision pipeline up to float rounding (about 1e-6).
"""

from __future__ import annotations

import dataclasses
import io
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from failurelens.data.errors import ImageDecodeError, ValidationError, ViolationCollector

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CLIP_MEAN",
    "CLIP_STD",
    "ImageDecodeError",
    "Preprocessing",
    "decode_image",
    "image_header",
    "preprocess",
    "read_image",
    "sniff_format",
]

DEFAULT_MAX_PIXELS = 40_000_000
#: the most pixels a caller may allow per image (beyond it one image could exhaust the server's memory)
MAX_PIXELS_LIMIT = 250_000_000
#: Raw file size refused by :func:`read_image` before reading (independent of the pixel limit).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ACCEPTED_FORMATS = ("PNG", "JPEG")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
# JPEG start-of-frame markers (SOF0..SOF15 except DHT, JPG and DAC)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


# --------------------------------------------------------------------------------------------
# format sniffing and header parsing
# --------------------------------------------------------------------------------------------
def sniff_format(data: bytes) -> str | None:
    """The image format named by the magic bytes of ``data`` (Pillow spelling), or ``None``."""
    head = bytes(data[:32])
    if head.startswith(_PNG_SIG):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if head.startswith(b"BM") and len(head) >= 26:
        return "BMP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"):
            return "HEIF"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG2000"
    if head.startswith(b"\x00\x00\x01\x00"):
        return "ICO"
    if head.startswith(b"8BPS"):
        return "PSD"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL "):
        return "JPEG XL"
    return None


def image_header(data: bytes) -> tuple[str, int, int] | None:
    """``(format, width, height)`` read from a PNG or JPEG header without decoding, else ``None``."""
    fmt = sniff_format(data)
    if fmt == "PNG":
        # signature, then the IHDR chunk: length(4) 'IHDR'(4) width(4) height(4)
        if len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return fmt, w, h
        return None
    if fmt == "JPEG":
        size = _jpeg_size(data)
        return (fmt, size[0], size[1]) if size else None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD9:  # standalone markers
            i += 2
            continue
        (seg_len,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if seg_len < 2:
            return None
        i += 2 + seg_len
    return None


def megapixels(pixels: float) -> str:
    """``12,345.6 MP`` style: grouped digits, at most one decimal, never scientific notation."""
    return f"{pixels / 1e6:,.1f}".removesuffix(".0") + " MP"


def _too_large(w: int, h: int, max_pixels: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"image is {w}x{h} = {megapixels(w * h)}; the limit is {megapixels(max_pixels)}; downscale it "
        f"(e.g. to at most {int(math.sqrt(max_pixels))}x{int(math.sqrt(max_pixels))}) and upload it again",
        kind="too_large",
    )


def _zero_size(w: int, h: int, fmt: str) -> ImageDecodeError:
    return ImageDecodeError(
        f"{fmt} header declares a {w}x{h} image (zero width or height); the file is broken, re-export it",
        kind="empty",
    )


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------
def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a PNG or JPEG completely into an 8-bit RGB :class:`PIL.Image.Image`.

    Raises :class:`ImageDecodeError` (a :class:`ValidationError`) for anything else; see the
    module docstring for the cases. Thread-safe; never mutates Pillow's global settings.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"decode_image takes bytes, not {type(data).__name__}")
    if len(data) == 0:
        raise ImageDecodeError("image file is empty (0 bytes); upload the complete PNG or JPEG file", kind="empty")
    if max_pixels <= 0:
        raise ValueError("max_pixels must be positive")

    magic = sniff_format(data)
    if magic is not None and magic not in ACCEPTED_FORMATS:
        raise _unsupported(magic)

    # 1. header dimensions, before Pillow allocates anything
    header = image_header(data) if magic else None
    if header is not None:
        _, w, h = header
        if w == 0 or h == 0:
            raise _zero_size(w, h, header[0])
        if w * h > max_pixels:
            raise _too_large(w, h, max_pixels)

    # 2. open (parses headers only)
    try:
        # (no warnings.catch_warnings here: it is not thread-safe; Pillow's DecompressionBombWarning
        # cannot fire for the default limit because bigger PNG/JPEG headers are refused above)
        img = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except Image.DecompressionBombError as e:
        size = header[1:] if header else None
        if size:
            raise _too_large(size[0], size[1], max_pixels) from None
        raise ImageDecodeError(f"image is too large to decode ({e}); downscale it", kind="too_large") from None
    except UnidentifiedImageError:
        if magic in ACCEPTED_FORMATS:
            raise ImageDecodeError(
                f"the file starts like a {magic} but its header is corrupt or cut short ({len(data)} bytes); re-export the image",
                kind="truncated" if len(data) < 64 else "corrupt",
            ) from None
        other = _pillow_format(data)
        if other is not None:
            raise _unsupported(other) from None
        raise ImageDecodeError(
            f"data is not an image ({len(data)} bytes starting with {bytes(data[:8]).hex()}); upload PNG or JPEG files",
            kind="not_an_image",
        ) from None
    except Exception as e:
        raise ImageDecodeError(f"cannot read the {magic or 'image'} header: {e}; re-export the image", kind="corrupt") from None

    fmt = img.format or magic or "image"
    w, h = img.size
    if w == 0 or h == 0:
        raise _zero_size(w, h, fmt)
    if w * h > max_pixels:
        raise _too_large(w, h, max_pixels)

    # 3. full decode; truncation must raise
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # pragma: no cover - somebody flipped Pillow's global
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; failurelens needs it False to detect truncated images")
    try:
        img.load()
    except (OSError, EOFError) as e:
        text = str(e) or type(e).__name__
        if "truncated" in text.lower() or isinstance(e, EOFError):
            raise ImageDecodeError(f"{fmt} is truncated ({len(data)} bytes; {text}); upload the complete file", kind="truncated") from None
        raise ImageDecodeError(f"{fmt} data is corrupt ({text}); re-export the image", kind="corrupt") from None
    except Exception as e:
        raise ImageDecodeError(f"{fmt} data is corrupt ({type(e).__name__}: {e}); re-export the image", kind="corrupt") from None
    if fmt == "PNG" and data.find(b"\x00\x00\x00\x00IEND") < 0:
        raise ImageDecodeError(
            f"PNG is truncated: it ends after {len(data)} bytes without its IEND chunk; upload the complete file",
            kind="truncated",
        )
    return _to_rgb(img)


def _pillow_format(data: bytes) -> str | None:
    """Name the format of ``data`` if any Pillow plugin recognises it (headers only)."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            return other.format or "unknown"
    except Exception:
        return None


def _unsupported(fmt: str) -> ImageDecodeError:
    return ImageDecodeError(
        f"image format {fmt} is not supported; only PNG and JPEG are accepted; convert it (PNG for lossless) and upload it again",
        kind="unsupported_format",
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow clips these to 0..255 when converting; scale the full range instead
        arr = np.asarray(img)
        if mode.startswith("I;16"):
            arr8 = (arr.astype(np.uint32) >> 8).astype(np.uint8)
        else:
            lo, hi = float(np.min(arr)), float(np.max(arr))
            if mode == "I" and lo >= 0 and hi <= 255:
                arr8 = arr.astype(np.uint8)
            elif mode == "I" and lo >= 0 and hi <= 65535:
                arr8 = (arr.astype(np.uint32) >> 8).astype(np.uint8)
            else:
                span = (hi - lo) or 1.0
                arr8 = np.clip((arr.astype(np.float64) - lo) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    return img.convert("RGB")


def read_image(
    store: Any,
    key: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """Read ``key`` from an :class:`~failurelens.store.base.ArtifactStore` and :func:`decode_image` it.

    Errors name the object's URI. ``ObjectNotFoundError`` from the store propagates.
    """
    info = store.stat(key)
    uri = store.uri(key)
    if info.size > max_bytes:
        raise ImageDecodeError(
            f"image file is {info.size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:g} MiB; re-encode or downscale it",
            kind="too_large",
            uri=uri,
        )
    try:
        return decode_image(store.get_bytes(key), max_pixels=max_pixels)
    except ImageDecodeError as e:
        raise e.with_uri(uri) from None


# --------------------------------------------------------------------------------------------
# preprocessing
# --------------------------------------------------------------------------------------------
RESIZE_MODES = ("stretch", "shorter_side_center_crop")
INTERPOLATIONS = ("bilinear", "bicubic")
MAX_INPUT_SIDE = 4096


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a classifier wants its input. Validated on construction (:class:`ValidationError`).

    ``input_size`` is ``(H, W)``; ``mean``/``std`` are per RGB channel, applied after ``scale``.
    ``crop_pct`` only matters for ``shorter_side_center_crop`` (see the module docstring).
    """

    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "stretch"
    interpolation: str = "bilinear"
    scale: float = 1.0 / 255.0
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        errs = ViolationCollector()
        size = _as_tuple(self.input_size, 2, int, "preprocessing.input_size", errs)
        if size is not None:
            for v in size:
                if not 1 <= v <= MAX_INPUT_SIDE:
                    errs.add(
                        "preprocessing.input_size",
                        f"input_size {tuple(size)} must be two integers (H, W) between 1 and {MAX_INPUT_SIDE}",
                    )
                    break
        mean = _as_tuple(self.mean, 3, float, "preprocessing.mean", errs)
        if mean is not None and not all(math.isfinite(v) for v in mean):
            errs.add("preprocessing.mean", f"mean {mean} must be three finite numbers (one per RGB channel)")
        std = _as_tuple(self.std, 3, float, "preprocessing.std", errs)
        if std is not None and not all(math.isfinite(v) and v > 0 for v in std):
            errs.add("preprocessing.std", f"std {std} must be three positive numbers (one per RGB channel)")
        if self.resize not in RESIZE_MODES:
            errs.add("preprocessing.resize", f"resize {self.resize!r} is not one of {list(RESIZE_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            errs.add(
                "preprocessing.interpolation",
                f"interpolation {self.interpolation!r} is not one of {list(INTERPOLATIONS)}",
            )
        scale = _as_number(self.scale)
        if scale is None or not (math.isfinite(scale) and scale > 0):
            errs.add("preprocessing.scale", f"scale {self.scale!r} must be a positive number (1/255 maps 8-bit to [0, 1])")
        crop_pct = _as_number(self.crop_pct)
        if crop_pct is None or not (0.0 < crop_pct <= 1.0):
            errs.add("preprocessing.crop_pct", f"crop_pct {self.crop_pct!r} must be in (0, 1] (0.875 = resize 256, crop 224)")
        errs.raise_if_any("invalid preprocessing")
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "crop_pct", crop_pct)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            "interpolation": self.interpolation,
            "scale": self.scale,
            "crop_pct": self.crop_pct,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Preprocessing:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValidationError(
                f"unknown preprocessing fields {unknown}; known fields are {sorted(known)}",
            )
        kw = dict(d)
        for k in ("input_size", "mean", "std"):
            if k in kw and isinstance(kw[k], list):
                kw[k] = tuple(kw[k])
        return cls(**kw)


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _as_tuple(value: Any, n: int, typ: type, field: str, errs: ViolationCollector) -> tuple | None:
    try:
        items = tuple(value)
    except TypeError:
        errs.add(field, f"{field.split('.')[-1]} {value!r} must be a sequence of {n} numbers")
        return None
    if len(items) != n:
        errs.add(field, f"{field.split('.')[-1]} {value!r} must have exactly {n} values, not {len(items)}")
        return None
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            errs.add(field, f"{field.split('.')[-1]} {value!r} must contain numbers only")
            return None
        if typ is int:
            if float(v) != int(v):
                errs.add(field, f"{field.split('.')[-1]} {value!r} must contain integers only")
                return None
            out.append(int(v))
        else:
            out.append(float(v))
    return tuple(out)


def resized_size(width: int, height: int, pp: Preprocessing) -> tuple[int, int]:
    """``(W, H)`` the image is resized to before any crop."""
    H, W = pp.input_size
    if pp.resize == "stretch":
        return W, H
    th, tw = int(math.floor(H / pp.crop_pct)), int(math.floor(W / pp.crop_pct))
    th, tw = max(th, H), max(tw, W)
    if th == tw:  # torchvision Resize(int): short side -> t, long side -> int(t * long / short)
        t = th
        if width <= height:
            return t, max(t, int(t * height / width))
        return max(t, int(t * width / height)), t
    s = max(th / height, tw / width)
    return max(tw, int(width * s)), max(th, int(height * s))


def _resize_one(img: Image.Image, pp: Preprocessing) -> np.ndarray:
    if img.mode != "RGB":
        img = _to_rgb(img)
    H, W = pp.input_size
    resample = _RESAMPLE[pp.interpolation]
    nw, nh = resized_size(img.width, img.height, pp)
    if (nw, nh) != img.size:
        img = img.resize((nw, nh), resample)
    if (nw, nh) != (W, H):
        top = int(round((nh - H) / 2.0))
        left = int(round((nw - W) / 2.0))
        img = img.crop((left, top, left + W, top + H))
    arr = np.asarray(img, dtype=np.uint8)
    if arr.shape != (H, W, 3):  # pragma: no cover - defensive
        raise AssertionError(f"internal error: resized to {arr.shape}, expected {(H, W, 3)}")
    return arr


def preprocess(images: Sequence[Image.Image], pp: Preprocessing) -> np.ndarray:
    """Resize and normalise ``images`` into a contiguous float32 ``[N, 3, H, W]`` array.

    Deterministic (Pillow resampling, then float32 arithmetic). Non-RGB images are converted as
    :func:`decode_image` would.
    """
    if not isinstance(pp, Preprocessing):
        raise TypeError("pp must be a Preprocessing")
    H, W = pp.input_size
    n = len(images)
    batch = np.empty((n, H, W, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        batch[i] = _resize_one(img, pp)
    out = np.empty((n, 3, H, W), dtype=np.float32)
    inv = 1.0 / pp.scale
    divisor = np.float32(round(inv)) if abs(inv - round(inv)) < 1e-9 else None  # ToTensor divides by 255
    scale = np.float32(pp.scale)
    for c in range(3):
        x = batch[..., c].astype(np.float32)
        if divisor is not None:
            x /= divisor
        else:
            x *= scale
        x -= np.float32(pp.mean[c])
        x /= np.float32(pp.std[c])
        out[:, c] = x
    return out
