"""Turning a request into what the engine needs: image bytes, steps, output options.

Shared by every submitting endpoint (A-core's /api/tasks/ and process-batch/distributed,
A-ops's /api/process and batch modes) so an image or a pipeline is parsed and limited in
exactly one way. Limits come from filters.io; filters and parameters from
filters.registry; sample names from filters.samples' fixed list — a client string never
becomes a filesystem path.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings as django_settings
from django.http import QueryDict

from api.exceptions import ACCEPTED_MEDIA_TYPES, BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from filters import io as image_io
from filters import registry, samples
from filters.errors import EngineError, ImageTooLarge
from filters.errors import ValidationError as StepsError
from filters.structure import MissingEnd, check_structure
from workers import settings, storage

IMAGE_FIELDS = ("image", "images")                   # multipart file fields
BASE64_FIELDS = ("image_base64", "image")            # JSON fields holding base64 text
JSON_FIELDS_IN_FORMS = ("filters", "filter_params", "steps", "image_base64")
DEFAULT_FORMAT = "png"
DEFAULT_QUALITY = 90


@dataclass(frozen=True)
class ImageInput:
    """One checked input image: its bytes, what probe_image found, and where it came from."""

    data: bytes
    info: Any            # filters.io.ImageInfo
    label: str           # "upload 'cat.png'", "image_base64[2]", "sample '4k'"
    digest: str | None = None   # known for samples: lets the submit skip re-sending the bytes


# --- Body -------------------------------------------------------------------------------

def body_dict(request) -> dict[str, Any]:
    """request.data as a plain dict; multipart/form fields holding JSON are decoded.

    A form can only carry strings, so `filters` may come as repeated fields, a JSON list
    or "resize,blur"; `filter_params` and `steps` as JSON text.
    """
    data = request.data
    if isinstance(data, QueryDict):
        _refuse_json_sent_as_form(request, data)
        body: dict[str, Any] = {}
        for key in data.keys():
            values = data.getlist(key)
            if key == "filters":
                body[key] = _form_filters(values)
            elif key in JSON_FIELDS_IN_FORMS:
                body[key] = _form_json(key, values[-1]) if len(values) == 1 else [_form_json(key, v) for v in values]
            else:
                body[key] = values[-1]
        return body
    if not isinstance(data, Mapping):
        raise BadRequest(f"The request body must be a JSON object, got {type(data).__name__}.",
                         code="malformed_request")
    return dict(data)


def _refuse_json_sent_as_form(request, data: QueryDict) -> None:
    """`curl -d '{"sample": …}'` sends JSON labelled application/x-www-form-urlencoded; the
    form parser then finds one field named after the whole JSON text and the request failed
    with "no pipeline", hiding the real mistake. Say what was seen and how to send it."""
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return
    if any(key.lstrip().startswith(("{", "[")) for key in data.keys()):
        raise UnsupportedMediaType(
            "The body looks like JSON but its Content-Type is application/x-www-form-urlencoded "
            "(what curl -d sends unless told otherwise): send it with -H 'Content-Type: application/json'.",
            {"content_type": content_type, "looks_like": "application/json",
             "accepted": list(ACCEPTED_MEDIA_TYPES)})


def _form_filters(values: list[str]) -> Any:
    if len(values) == 1:
        text = values[0].strip()
        if text.startswith("["):
            return _form_json("filters", text)
        return [name.strip() for name in text.split(",") if name.strip()]
    return values


def _form_json(key: str, text: str) -> Any:
    text = text.strip()
    if key == "image_base64" and not text.startswith(("[", "{", '"')):
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"Form field {key!r} must be JSON text: {exc}", code="malformed_request") from None


# --- Steps and options ------------------------------------------------------------------

def parse_steps(body: Mapping[str, Any]) -> list:
    """Steps from either `steps` (ordered list) or the original `filters` + `filter_params`."""
    has_steps = body.get("steps") is not None
    has_filters = body.get("filters") is not None
    if has_steps and has_filters:
        raise StepsError("send either 'steps' or 'filters' (+ 'filter_params'), not both")
    if has_steps:
        return registry.validate_steps(body["steps"])
    if has_filters:
        return registry.steps_from_filters(body["filters"], body.get("filter_params"))
    if body.get("filter_params") is not None:
        raise StepsError("filter_params was sent without filters: list the filters to run in 'filters'")
    raise StepsError("no pipeline: send 'filters' (with optional 'filter_params') or an ordered 'steps' list; "
                     "GET /api/filters/ lists the filters")


def parse_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """Output format, quality and device, checked; defaults png / 90 / auto."""
    fmt = body.get("format", DEFAULT_FORMAT)
    if fmt is None:
        fmt = DEFAULT_FORMAT
    if not isinstance(fmt, str) or fmt.lower().replace("jpg", "jpeg") not in image_io.OUTPUT_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(image_io.OUTPUT_FORMATS)}, got {fmt!r:.40}",
                           {"field": "format"})
    quality = body.get("quality", DEFAULT_QUALITY)
    if quality is None:
        quality = DEFAULT_QUALITY
    if isinstance(quality, str) and quality.strip().isdigit():
        quality = int(quality)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidInput(f"quality must be an integer from 1 to 100, got {quality!r:.40}", {"field": "quality"})
    device = body.get("device", "auto")
    if device is None:
        device = "auto"
    if not isinstance(device, str) or device.lower() not in registry.DEVICES:
        raise InvalidInput(f"device must be one of {', '.join(registry.DEVICES)}, got {device!r:.40}",
                           {"field": "device"})
    return {"format": fmt.lower().replace("jpg", "jpeg"), "quality": quality, "device": device.lower()}


# --- Images -----------------------------------------------------------------------------

def parse_images(request, body: Mapping[str, Any], *, default_sample: str | None = None,
                 conn: redis.Redis | None = None) -> list[ImageInput]:
    """Every image of the request, each checked by probe_image (and decoded when cheap).

    Sources, in order: multipart files `image`/`images`, base64 text in `image_base64`
    or `image` (a string or a list), a `sample` name. With none of them, the
    `default_sample` if the endpoint has one, else 400.
    """
    found: list[tuple[str, Any]] = []      # (label, bytes | UploadedFile | sample name)
    for field in IMAGE_FIELDS:
        for upload in request.FILES.getlist(field):
            found.append((f"upload {upload.name!r:.60}", upload))
    for field in BASE64_FIELDS:
        value = body.get(field)
        if value is None or field in request.FILES:
            continue
        if isinstance(value, str):
            found.append((field, _decode_base64(field, value)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found.append((f"{field}[{index}]", _decode_base64(f"{field}[{index}]", item)))
        else:
            raise InvalidInput(f"{field} must be base64 text or a list of base64 texts, got {type(value).__name__}",
                               {"field": field})
    sample = body.get("sample")
    if sample is not None:
        found.append((f"sample {sample!r:.40}", check_sample_name(sample)))
    if not found:
        if default_sample is None:
            raise BadRequest("no image: upload a file as 'image' (multipart), send base64 in 'image_base64', "
                             f"or name a sample in 'sample' ({', '.join(samples.SAMPLE_NAMES)})", code="no_image")
        found.append((f"sample {default_sample!r}", default_sample))
    limit = django_settings.MAX_IMAGES_PER_REQUEST
    if len(found) > limit:
        raise PayloadTooLarge(f"{len(found)} images in one request; at most {limit} (PIXELFLEET_MAX_IMAGES_PER_REQUEST)",
                              {"images": len(found), "limit": limit}, code="too_many_images")
    images = []
    for label, source in found:
        if isinstance(source, str):      # a sample name, already checked against the list
            data, info, digest = sample_input(conn or settings.get_redis(), source)
            images.append(ImageInput(data, info, label, digest))
        else:
            images.append(check_image(_read_upload(label, source) if not isinstance(source, bytes) else source, label))
    return images


def _read_upload(label: str, upload) -> bytes:
    """An uploaded file's bytes; its size is checked first, so a huge file is never read."""
    if upload.size > image_io.MAX_BYTES:
        raise ImageTooLarge(f"{label}: {upload.size} bytes, over the limit of {image_io.MAX_BYTES} bytes "
                            "(PIXELFLEET_MAX_BYTES)", {"image": label, "bytes": upload.size, "limit": image_io.MAX_BYTES})
    return upload.read()


def _decode_base64(label: str, text: Any) -> bytes:
    if not isinstance(text, str):
        raise InvalidInput(f"{label} must be base64 text, got {type(text).__name__}", {"field": label})
    if text.startswith("data:"):              # a data URL: data:image/png;base64,....
        _, _, text = text.partition(",")
    text = "".join(text.split())
    if not text:
        raise InvalidInput(f"{label} is empty", {"field": label}, code="invalid_base64")
    if len(text) * 3 // 4 > image_io.MAX_BYTES:
        raise ImageTooLarge(f"{label}: about {len(text) * 3 // 4} bytes once decoded, over the limit of "
                            f"{image_io.MAX_BYTES} bytes (PIXELFLEET_MAX_BYTES)",
                            {"image": label, "limit": image_io.MAX_BYTES})
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{label} is not valid base64: {exc}", {"field": label}, code="invalid_base64") from None


# Full decode at submit up to this size: about 5 ms for a 1 MP JPEG, where a 24 MP photo
# costs 120 ms to 2 s (measured, docs/api.md) and its worker decodes it anyway, smaller.
DEFAULT_VERIFY_DECODE_MEGAPIXELS = 1.0


def verify_decode_limit() -> float:
    """Images up to this many megapixels are fully decoded at submit (PIXELFLEET_VERIFY_DECODE_MAX_MEGAPIXELS).

    probe_image reads headers and check_structure walks the file's layout, so a truncated
    upload is refused at any size; what only decoding reveals (damage inside compressed
    data) is refused here for small images and is a worker's job_failure for larger ones.
    See docs/api.md for the measured cost; 0 disables it.
    """
    raw = os.environ.get("PIXELFLEET_VERIFY_DECODE_MAX_MEGAPIXELS", "").strip()
    try:
        return float(raw) if raw else DEFAULT_VERIFY_DECODE_MEGAPIXELS
    except ValueError:
        return DEFAULT_VERIFY_DECODE_MEGAPIXELS


def check_image(data: bytes, label: str = "image") -> ImageInput:
    """probe_image (bytes, megapixels, format), then a full decode when the image is small
    enough that it costs little, else the structural check (never a full decode of a
    24 MP photo: microseconds, or a 1/8-scale decode for a JPEG without its end marker)."""
    if not data:
        raise InvalidInput(f"{label} is empty (0 bytes)", {"image": label}, code="invalid_image")
    try:
        info = image_io.probe_image(data)
        if info.width * info.height <= verify_decode_limit() * 1_000_000:
            image_io.decode_image(data)            # small: the decoder itself is the check
        else:
            try:
                check_structure(data, info.format)
            except MissingEnd:                     # truncated, or only the marker lost
                image_io.verify_decodes(data)      # a 1/8-scale JPEG decode settles it
    except EngineError as exc:
        details = dict(exc.details or {})
        details.setdefault("image", label)
        raise type(exc)(f"{label}: {exc.message}", details) from None
    return ImageInput(data, info, label)


# --- Samples ----------------------------------------------------------------------------

def check_sample_name(name: Any) -> str:
    """`name` if it is one of filters.samples.SAMPLE_NAMES, else 400 listing them."""
    if not isinstance(name, str) or name not in samples.SAMPLE_NAMES:
        raise BadRequest(f"unknown sample {name!r:.40}; choose one of {', '.join(samples.SAMPLE_NAMES)}",
                         {"field": "sample", "choices": list(samples.SAMPLE_NAMES)}, code="unknown_sample")
    return name


def sample_key(name: str) -> str:
    return settings.SAMPLE_KEY.format(name=name)


_SAMPLE_INPUTS: dict[str, tuple[bytes, Any, str]] = {}


def sample_input(conn: redis.Redis, name: str) -> tuple[bytes, Any, str]:
    """(bytes, ImageInfo, sha256) of a sample, kept per process after the first use.

    Load tests submit samples by name thousands of times; with the digest known, the
    submit only takes a reference on the stored input instead of moving megabytes each time.
    """
    cached = _SAMPLE_INPUTS.get(name)
    if cached is None:
        data = sample_bytes(conn, name)
        cached = (data, image_io.probe_image(data), storage.digest_of(data))
        _SAMPLE_INPUTS[name] = cached
    return cached


def sample_bytes(conn: redis.Redis, name: str) -> bytes:
    """The PNG of a sample, generated once and stored once in Redis (SET NX) for the fleet."""
    name = check_sample_name(name)
    data = conn.get(sample_key(name))
    if data is None:
        data = samples.sample_png(name)
        conn.set(sample_key(name), data, nx=True)
    return data
