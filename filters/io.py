"""Safe image decoding and encoding: the engine's only door to untrusted bytes.

Limits are checked before pixels are decoded: the byte count first, then the pixel
count from the header (Pillow's decompression-bomb warning is an error here too, and
`Image.MAX_IMAGE_PIXELS` follows our limit). Formats are recognised by content, never by
a file name or a client's content type. Anything the decoder raises on bad data is
converted to an `EngineError`, so a hostile file can cost a 4xx, never a 5xx or a crash.

Limits are read from the environment at call time (PIXELFLEET_MAX_BYTES,
PIXELFLEET_MAX_MEGAPIXELS), so tests and operators can change them without a restart.
"""
from __future__ import annotations

import io
import os
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import simplejpeg
from PIL import Image, ImageCms, ImageOps

from filters.errors import (
    EngineError,
    FilterFailed,
    ImageTooLarge,
    ImageTooManyPixels,
    InvalidImage,
    ValidationError,
)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_MEGAPIXELS = 50.0

# Pillow format id -> our name. MPO is how Pillow opens multi-picture (camera) JPEGs.
INPUT_FORMATS: dict[str, str] = {
    "PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp",
    "GIF": "gif", "BMP": "bmp", "TIFF": "tiff",
}
ACCEPTED_TEXT = "PNG, JPEG, WebP, GIF, BMP, TIFF"
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
FORMAT_ALIASES = {"jpg": "jpeg"}
# zlib level for PNG output. Measured on a 3840x2880 photo here: level 1 ~0.55 s and
# 5.9 MB, level 6 (Pillow's default) ~2.5 s and 4.5 MB. A worker fleet pays the time on
# every task, Redis pays the bytes only for the result's TTL: speed wins.
PNG_COMPRESS_LEVEL = 1

# A decompression-bomb warning is always an error in this process (installed once, not
# per call: warnings.catch_warnings is not thread-safe). Our own pixel check below does
# not rely on it either way.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
Image.init()  # register every plugin now, so Image.open(formats=...) finds them all
# Plugins to try; MPO is not one of its own here (the JPEG plugin may return it).
_OPENERS = [name for name in INPUT_FORMATS if name in Image.OPEN]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {raw!r}")
    return value


def max_bytes() -> int:
    """PIXELFLEET_MAX_BYTES now (default 50 MiB)."""
    return int(_env_number("PIXELFLEET_MAX_BYTES", DEFAULT_MAX_BYTES))


def max_megapixels() -> float:
    """PIXELFLEET_MAX_MEGAPIXELS now (default 50)."""
    return _env_number("PIXELFLEET_MAX_MEGAPIXELS", DEFAULT_MAX_MEGAPIXELS)


def max_pixels() -> int:
    return int(max_megapixels() * 1_000_000)


def __getattr__(name: str) -> Any:
    """`filters.io.MAX_BYTES` / `MAX_MEGAPIXELS` read the environment when accessed."""
    if name == "MAX_BYTES":
        return max_bytes()
    if name == "MAX_MEGAPIXELS":
        return max_megapixels()
    raise AttributeError(f"module 'filters.io' has no attribute {name!r}")


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: format (our name), size, Pillow mode, frame count."""

    format: str
    width: int
    height: int
    mode: str
    frames: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


# --- Limits ---------------------------------------------------------------------------
def check_pixel_limit(width: int, height: int, what: str = "image") -> None:
    """ImageTooManyPixels when width x height is above PIXELFLEET_MAX_MEGAPIXELS."""
    if width * height > max_pixels():
        raise ImageTooManyPixels(
            f"{what} is {width}x{height} ({_mp(width * height)} megapixels), above the limit "
            f"of {max_megapixels():g} megapixels (PIXELFLEET_MAX_MEGAPIXELS)",
            {"width": width, "height": height, "max_megapixels": max_megapixels()},
        )


def _mp(pixels: int) -> str:
    return f"{pixels / 1_000_000:.3g}" if pixels < 1e9 else f"{pixels / 1_000_000:,.0f}"


def _check_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InvalidImage(f"image data must be bytes, got {type(data).__name__}")
    if not data:
        raise InvalidImage("image data is empty")
    if len(data) > max_bytes():
        raise ImageTooLarge(
            f"image is {len(data):,} bytes, above the limit of {max_bytes():,} bytes "
            "(PIXELFLEET_MAX_BYTES)",
            {"bytes": len(data), "max_bytes": max_bytes()},
        )
    return data


def _bomb_error(exc: Exception) -> ImageTooManyPixels:
    """Pillow's bomb error/warning as ours, with the pixel count it found."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{_mp(int(found.group(1)))} megapixels" if found else "too many pixels"
    return ImageTooManyPixels(
        f"image header claims {size}, above the limit of {max_megapixels():g} megapixels "
        "(PIXELFLEET_MAX_MEGAPIXELS); possibly a decompression bomb",
        {"max_megapixels": max_megapixels()},
    )


# --- Opening (headers only) ------------------------------------------------------------
def _open(data: bytes) -> Image.Image:
    """Pillow image with only the header read, after every check that needs no pixels."""
    Image.MAX_IMAGE_PIXELS = max_pixels()
    try:
        im = Image.open(io.BytesIO(data), formats=_OPENERS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc) from None
    except Image.UnidentifiedImageError:
        raise InvalidImage(_unsupported_message(data)) from None
    except Exception as exc:  # a malformed header can raise nearly anything
        raise InvalidImage(f"could not read the image header: {_reason(exc)}") from None
    check_pixel_limit(*im.size)
    if im.size[0] < 1 or im.size[1] < 1:
        raise InvalidImage(f"image has no pixels ({im.size[0]}x{im.size[1]})")
    return im


def _unsupported_message(data: bytes) -> str:
    """Name the real format when Pillow knows it, so the client learns what it sent."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            found = other.format
    except Exception:
        found = None
    if found:
        return f"unsupported image format {found} (accepted: {ACCEPTED_TEXT})"
    return f"not a recognised image (accepted: {ACCEPTED_TEXT})"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def probe_image(data: bytes) -> ImageInfo:
    """Bytes, format and pixel limits from the header, without decoding pixels."""
    data = _check_bytes(data)
    im = _open(data)
    try:
        try:
            frames = int(getattr(im, "n_frames", 1))
        except Exception:
            frames = 1  # a damaged later frame does not matter: we use the first
        return ImageInfo(INPUT_FORMATS[im.format], im.size[0], im.size[1], im.mode, frames)
    finally:
        im.close()


# --- Decoding -------------------------------------------------------------------------
# JPEG's DCT-domain scales (libjpeg), largest first; other formats may box-reduce by any
# integer up to this.
DCT_FACTORS = (8, 4, 2)
MAX_REDUCE_FACTOR = 256
ORIENTATION_TAG = 0x0112
# Process-wide count of decodes by path ("full", "dct:1/8", "reduce:1/3"...): the tests and
# operators see which path the planner picked without reading every result.
DECODE_COUNTS: Counter[str] = Counter()


class Reduction(Protocol):
    """What a decode may shrink by (filters.shrink.ShrinkPlan is one)."""

    def factor_from(self, candidates: Iterable[int]) -> int: ...


# (upright height, upright width) -> the reduction the pipeline allows, or None.
ReductionFor = Callable[[int, int], "Reduction | None"]


@dataclass(frozen=True)
class Decoded:
    """A decoded image and how: `factor` 1 is a full decode; `method` "full", "dct"
    (JPEG scaled in libjpeg) or "reduce" (box average after decoding); the full upright
    size it stands for; decode time in milliseconds."""

    image: np.ndarray
    format: str
    height: int
    width: int
    factor: int = 1
    method: str = "full"
    ms: float = 0.0

    @property
    def scale(self) -> str:
        return "1" if self.factor == 1 else f"1/{self.factor}"

    @property
    def label(self) -> str:
        """`full`, `dct:1/8`, `reduce:1/3`: the counter key and the log field."""
        return "full" if self.factor == 1 else f"{self.method}:{self.scale}"

    def describe(self) -> dict[str, Any]:
        """JSON for a task's result: {"method", "scale", "source", "decoded", "ms"}."""
        h, w = self.image.shape[:2]
        return {"method": self.method, "scale": self.scale, "source": f"{self.width}x{self.height}",
                "decoded": f"{w}x{h}", "ms": round(self.ms, 3)}


def decode_image(data: bytes) -> np.ndarray:
    """Upright RGB or RGBA uint8 (H, W, C), C-contiguous; first frame of an animation.

    Raises ImageTooLarge, ImageTooManyPixels or InvalidImage, never anything else.
    """
    return decode_scaled(data).image


def decode_scaled(data: bytes, reduction_for: ReductionFor | None = None) -> Decoded:
    """decode_image, decoding smaller when `reduction_for(height, width)` (the upright full
    size) allows it: JPEG at the largest DCT scale allowed, other formats box-reduced
    (`Image.reduce`) before they become an array. Same errors as decode_image."""
    start = time.perf_counter()
    data = _check_bytes(data)
    opened = _open(data)
    fmt = INPUT_FORMATS.get(opened.format, opened.format)
    try:
        opened.seek(0)
        method, factor, reduction, full_size = "full", 1, None, None
        if reduction_for is not None and fmt == "jpeg" and opened.mode in ("RGB", "L"):
            # Not CMYK: its conversion to RGB is not linear, averaging first would tint.
            # JPEG's EXIF is in its header, so the upright size is known before decoding.
            full_size = _upright_size(opened)
            reduction = reduction_for(*full_size)
            if reduction is not None:
                factor = _draft(opened, reduction.factor_from(DCT_FACTORS))
                method = "dct" if factor > 1 else "full"
        if fmt == "jpeg" and (factor > 1 or reduction is None):
            turbo = _turbo_decode(data, opened, factor)
            if turbo is not None:
                return _decoded(turbo, fmt, full_size, factor, method, start)
        opened.load()
        check_pixel_limit(*opened.size)
        upright = _to_rgb_image(_upright(opened))
        if full_size is None:
            full_size = (upright.shape[0], upright.shape[1]) if isinstance(upright, np.ndarray) \
                else (upright.size[1], upright.size[0])
        if reduction_for is not None and factor == 1 and isinstance(upright, Image.Image) \
                and upright.mode == "RGB":  # not RGBA: Pillow's reduce weighs colour by alpha
            reduction = reduction if reduction is not None else reduction_for(*full_size)
            factor = reduction.factor_from(range(MAX_REDUCE_FACTOR, 1, -1)) if reduction else 1
            if factor > 1:
                upright, method = upright.reduce(factor), "reduce"
        array = upright if isinstance(upright, np.ndarray) else \
            np.ascontiguousarray(np.asarray(upright, dtype=np.uint8))
    except EngineError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc) from None
    except MemoryError:
        raise ImageTooManyPixels("not enough memory to decode this image") from None
    except Exception as exc:  # truncated/corrupt data: OSError, SyntaxError, ValueError…
        raise InvalidImage(f"could not decode the {fmt} image: {_reason(exc)}") from None
    finally:
        opened.close()
    return _decoded(array, fmt, full_size, factor, method, start)


def _decoded(array: np.ndarray, fmt: str, full_size: tuple[int, int] | None, factor: int, method: str,
             start: float) -> Decoded:
    if full_size is None:
        full_size = (array.shape[0], array.shape[1])
    decoded = Decoded(array, fmt, full_size[0], full_size[1], factor, method,
                      (time.perf_counter() - start) * 1000)
    DECODE_COUNTS[decoded.label] += 1
    return decoded


# EXIF orientation -> the numpy view that stands the pixels upright, as
# ImageOps.exif_transpose does (2 flip left-right, 3 rotate 180, 4 flip top-bottom,
# 5 transpose, 6 rotate 270, 7 transverse, 8 rotate 90; Pillow's angles are anticlockwise).
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1),
}


def _turbo_decode(data: bytes, opened: Image.Image, factor: int) -> np.ndarray | None:
    """An ordinary colour JPEG decoded by libjpeg-turbo straight into a numpy array
    (simplejpeg), at 1/`factor` as `_draft` set up; None when Pillow must decode it.

    Why: Pillow decodes into its own image and copies it out through its encoder in 64 KB
    pieces (`tobytes`), which cost 3–4 ms of the ~13 ms a 2040×1356 photo took at 1/2
    scale; libjpeg-turbo is the same library with the same settings (ISLOW DCT, fancy
    upsampling), so the pixels are identical (tests/filters/test_turbo_decode.py).
    Pillow keeps everything unusual: grey, CMYK, an ICC profile to convert, data after
    the end-of-image marker, and any file libjpeg only warns about (strict: it raises,
    and Pillow then decides as it always did, with its own error message).
    """
    if opened.mode != "RGB" or not data.endswith(b"\xff\xd9") or _icc_source(opened) is not None:
        return None
    width, height = opened.size   # after _draft: the scaled size
    check_pixel_limit(width, height)
    try:
        array = simplejpeg.decode_jpeg(data, "RGB", min_factor=factor, min_width=width, min_height=height,
                                       strict=True)
    except (ValueError, MemoryError):
        return None
    if array.shape != (height, width, 3):
        return None
    turn = _ORIENT.get(_orientation(opened))
    return np.ascontiguousarray(turn(array)) if turn is not None else array


class _Smallest:
    """The largest reduction any decoder offers: for checks that only need a decode to finish."""

    @staticmethod
    def factor_from(candidates: Iterable[int]) -> int:
        return max(candidates, default=1)


def verify_decodes(data: bytes) -> Decoded:
    """Decode all of `data` as small as possible (JPEG at 1/8: the entropy data is still
    read to its end, so truncation and most damage raise). Same errors as decode_image."""
    return decode_scaled(data, lambda height, width: _Smallest())


def _upright_size(im: Image.Image) -> tuple[int, int]:
    """(height, width) once EXIF orientation is applied (5..8 swap the sides). Only for
    JPEG before loading: other formats' getexif may load (and hide a decode error)."""
    width, height = im.size
    return (width, height) if _orientation(im) in (5, 6, 7, 8) else (height, width)


def _orientation(im: Image.Image) -> Any:
    """The EXIF orientation tag, 1 when there is none or the EXIF cannot be read (the
    pixels are then taken as stored: broken metadata must not lose a good picture)."""
    try:
        return im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:
        return 1


def _draft(im: Image.Image, factor: int) -> int:
    """Ask libjpeg for a 1/factor decode; returns the factor it will really use."""
    if factor <= 1:
        return 1
    width, height = im.size
    if im.draft(None, (width // factor, height // factor)) is None:
        return 1
    return int(im.decoderconfig[0]) if getattr(im, "decoderconfig", None) else 1


def _upright(im: Image.Image) -> Image.Image:
    """EXIF orientation applied. Unreadable EXIF leaves the pixels as stored: losing a
    good picture over broken metadata would be worse than showing it unrotated."""
    if _orientation(im) in (None, 0, 1):
        return im   # upright already: exif_transpose would copy every pixel for nothing
    try:
        return ImageOps.exif_transpose(im)
    except Exception:
        return im


def _to_rgb_image(im: Image.Image) -> Image.Image | np.ndarray:
    """Any Pillow mode as an RGB or RGBA image, colours converted rather than guessed
    (16-bit grey comes back as an RGB uint8 array: Pillow cannot scale it to 8 bits)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        gray = _sixteen_to_eight(np.asarray(im))
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "LAB":
        im = ImageCms.applyTransform(im, _lab_to_srgb())
    elif mode == "F":
        im = im.convert("L")  # float data: Pillow clips to 0..255
    im = _apply_icc(im)
    palette_mode = getattr(im.palette, "mode", None) if im.mode == "P" else None
    has_alpha = im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        im.mode == "P" and ("transparency" in im.info or palette_mode == "RGBA")
    )
    target = "RGBA" if has_alpha else "RGB"
    if im.mode != target:
        im = im.convert(target)
    return im


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """16-bit samples to 8-bit over the full range: round(x * 255 / 65535), not a clip."""
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


_SRGB = ImageCms.createProfile("sRGB")


def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    """Built per call: a littlecms transform with its cache is not safe to share between
    threads, and LAB inputs are rare enough that the few milliseconds do not matter."""
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), _SRGB, "LAB", "RGB")


def _icc_source(im: Image.Image) -> "ImageCms.ImageCmsProfile | None":
    """The embedded ICC profile to convert from, or None when there is nothing to do:
    no profile, an sRGB one (a transform that changes nothing), or one littlecms cannot
    read (the pixels are then taken as sRGB)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK", "L", "LA"):
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if ImageCms.getProfileDescription(source).strip().startswith("sRGB"):
            return None
    except Exception:
        return None
    return source


def _apply_icc(im: Image.Image) -> Image.Image:
    """Convert an embedded ICC profile's colours to sRGB (alpha kept aside).

    A profile that littlecms cannot use is ignored (the pixels are then taken as sRGB),
    because refusing an otherwise good image over its metadata would lose the task.
    """
    source = _icc_source(im)
    if source is None:
        return im
    alpha = im.getchannel("A") if im.mode in ("RGBA", "LA") else None
    base = im.convert({"RGBA": "RGB", "LA": "L"}.get(im.mode, im.mode)) if alpha else im
    try:
        converted = ImageCms.profileToProfile(base, source, _SRGB, outputMode="RGB")
    except Exception:
        return im
    if converted is None:
        return im
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


# --- Encoding -------------------------------------------------------------------------
def normalise_format(fmt: Any) -> str:
    """'png' | 'jpeg' | 'webp' ('jpg' accepted), or ValidationError listing them."""
    name = FORMAT_ALIASES.get(str(fmt).lower(), str(fmt).lower()) if isinstance(fmt, str) else None
    if name not in OUTPUT_FORMATS:
        raise ValidationError(
            f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}", {"format": str(fmt)}
        )
    return name


def check_image(image: Any) -> np.ndarray:
    """The engine's image contract: uint8 (H, W, 3|4), returned C-contiguous."""
    if not isinstance(image, np.ndarray):
        raise FilterFailed(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FilterFailed(f"image must be uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise FilterFailed(f"image must have shape (H, W, 3) or (H, W, 4), got {image.shape}")
    return np.ascontiguousarray(image)


def flatten_alpha(image: np.ndarray, background: int = 255) -> np.ndarray:
    """RGBA composited onto a plain background (white): what JPEG can store."""
    rgb = image[:, :, :3].astype(np.uint16)
    alpha = image[:, :, 3:4].astype(np.uint16)
    out = (rgb * alpha + background * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 90) -> bytes:
    """PNG, JPEG or WebP bytes with no metadata copied (no EXIF, no ICC).

    quality (1..100) applies to JPEG and WebP; PNG is lossless and ignores it. JPEG has
    no alpha, so RGBA is flattened onto white first.
    """
    fmt = normalise_format(fmt)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValidationError(f"quality must be an integer between 1 and 100, got {quality!r}")
    image = check_image(image)
    if fmt == "jpeg" and image.shape[2] == 4:
        image = flatten_alpha(image)
    pil = Image.fromarray(image, "RGBA" if image.shape[2] == 4 else "RGB")
    out = io.BytesIO()
    try:
        if fmt == "png":
            pil.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
        elif fmt == "jpeg":
            pil.save(out, "JPEG", quality=quality, optimize=False)
        else:
            pil.save(out, "WEBP", quality=quality, method=4)
    except Exception as exc:  # e.g. WebP's 16383-pixel side limit
        raise FilterFailed(
            f"cannot encode a {image.shape[1]}x{image.shape[0]} image as {fmt}: {_reason(exc)}"
        ) from None
    return out.getvalue()
