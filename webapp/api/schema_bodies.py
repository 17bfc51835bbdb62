"""The request side of the OpenAPI schema, as tight as the validation: built from the registry.

Why: the serializers documented every field as optional and free-form, so a client
generated from the schema sent `{}` to POST /api/tasks/ or `limit=7442582718` and was
refused (schemathesis' positive-data check found a refusal on every operation). The
bodies here say what api.inputs and filters.registry really accept: a pipeline is
`filters` (names) or `steps` (each filter with its own parameters, ranges and choices,
resize's "width, height or scale, not scale with a size"), exactly one of them; an image
source is required where the endpoint has no default; numbers carry their bounds.

What a JSON Schema cannot say is left to the description and answered with 413/422, not
400: whether bytes decode as an image, and sizes that only multiply out at run time
(a batch's output megapixels). `filter_params` (parameters keyed by filter name) is
described in words: "every key must also be in `filters`" has no JSON Schema form, so
the documented body carries parameters in `steps` instead.
"""
from __future__ import annotations

from typing import Any

from filters import io as image_io
from filters import registry, samples

BASE64 = {"type": "string", "format": "byte",
          "pattern": r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
          "description": "base64 image (an image file's bytes; 422 when they do not decode)"}
TASK_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
FILTER_PARAMS_NOTE = ("The original form's `filter_params` ({\"blur\": {\"radius\": 3}}, every key also listed "
                      "in `filters`) is accepted too; `steps` carries the same parameters per step.")


def param_schema(param: Any, allow_null: bool = True) -> dict[str, Any]:
    """One registry parameter as a JSON Schema (type, range, choices, default)."""
    if param.type == "int":
        out: dict[str, Any] = {"type": "integer"}
    elif param.type == "float":
        out = {"type": "number"}
    elif param.type == "bool":
        out = {"type": "boolean"}
    else:
        out = {"type": "string", "enum": list(param.choices)}
    if param.type in ("int", "float"):
        if param.min is not None:
            out["minimum"] = param.min
        if param.max is not None:
            out["maximum"] = param.max
    if param.default is not None:
        out["default"] = param.default
    if param.nullable and allow_null:
        out["nullable"] = True
    if getattr(param, "help", None):
        out["description"] = param.help
    return out


def params_schema(spec: Any) -> dict[str, Any]:
    """A filter's `params` object; resize also says "one of width, height or scale"."""
    sized = spec.name == "resize"
    out: dict[str, Any] = {"type": "object", "additionalProperties": False,
                           "properties": {p.name: param_schema(p, allow_null=not sized) for p in spec.params}}
    if sized:
        out["anyOf"] = [{"required": ["width"]}, {"required": ["height"]}, {"required": ["scale"]}]
        out["not"] = {"anyOf": [{"required": ["scale", "width"]}, {"required": ["scale", "height"]}]}
    return out


def step_schema(spec: Any) -> dict[str, Any]:
    needs_params = spec.name == "resize"
    return {"type": "object", "additionalProperties": False,
            "required": ["filter", "params"] if needs_params else ["filter"],
            "properties": {"filter": {"type": "string", "enum": [spec.name]}, "params": params_schema(spec)}}


def pipeline_properties() -> dict[str, Any]:
    names = list(registry.FILTERS)
    return {
        "filters": {"type": "array", "minItems": 1, "maxItems": registry.MAX_STEPS,
                    "items": {"type": "string", "enum": names},
                    "description": "Filter names in order (the original form); each runs with its defaults "
                                   "(a resize without size: 800x600). " + FILTER_PARAMS_NOTE},
        "steps": {"type": "array", "minItems": 1, "maxItems": registry.MAX_STEPS,
                  "items": {"oneOf": [step_schema(spec) for spec in registry.FILTERS.values()]},
                  "description": "Ordered steps, each a filter and its parameters; a filter may repeat."},
    }


ONE_PIPELINE = [{"required": ["filters"], "not": {"required": ["steps"]}},
                {"required": ["steps"], "not": {"required": ["filters"]}}]


def options_properties() -> dict[str, Any]:
    return {"format": {"type": "string", "enum": list(image_io.OUTPUT_FORMATS), "default": "png"},
            "quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": 90},
            "device": {"type": "string", "enum": list(registry.DEVICES), "default": "auto"}}


def body(properties: dict[str, Any], all_of: list[dict[str, Any]], description: str) -> dict[str, Any]:
    """An object of exactly these properties that also meets every rule in `all_of`."""
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "allOf": all_of, "description": description}


def task_json() -> dict[str, Any]:
    props = {**pipeline_properties(), **options_properties(),
             "sample": {"type": "string", "enum": list(samples.SAMPLE_NAMES),
                        "description": "a generated sample image instead of an upload"},
             "image_base64": {**BASE64, "maxLength": 1_000_000}}
    sources = [{"required": ["sample"], "not": {"required": ["image_base64"]}},
               {"required": ["image_base64"], "not": {"required": ["sample"]}}]
    return body(props, [{"oneOf": ONE_PIPELINE}, {"oneOf": sources}],
                "One image (sample or base64; several as a list of base64 strings: one task each) and a "
                "pipeline.")


def task_multipart() -> dict[str, Any]:
    names = "|".join(registry.FILTERS)
    props = {"image": {"type": "string", "format": "binary", "minLength": 1,
                       "description": "the image file (422 when it does not decode)"},
             "filters": {"type": "string", "pattern": rf"^({names})(,({names})){{0,{registry.MAX_STEPS - 1}}}$",
                         "description": "filter names joined by commas (each with its defaults; `steps` and "
                                        "`filter_params` as JSON text are accepted too)"},
             **options_properties()}
    return {"type": "object", "additionalProperties": False, "required": ["image", "filters"],
            "properties": props}


def batch_json(mode: str, max_count: int, max_iterations: int, max_megapixels: float) -> dict[str, Any]:
    props = {**pipeline_properties(),
             "sample": {"type": "string", "enum": list(samples.SAMPLE_NAMES), "default": "small"},
             "image": {**BASE64, "maxLength": 1_000_000},
             "image_count": {"type": "integer", "minimum": 1, "maximum": max_count}}
    if mode == "stress":
        props["num_iterations"] = {"type": "integer", "minimum": 1, "maximum": max_iterations, "default": 10}
        props["execution_mode"] = {"type": "string", "enum": ["sequential", "threading", "multiprocessing"],
                                   "default": "sequential"}
    if mode == "compare-all":
        props["wait"] = {"type": "number", "minimum": 0, "maximum": 120}
    per_sample = []      # how many copies of each sample fit the input megapixel budget
    for name, (width, height) in samples.SAMPLE_SIZES.items():
        fits = max(1, int(max_megapixels * 1e6 // (width * height)))
        per_sample.append({"properties": {"sample": {"enum": [name]}, "image_count": {"maximum": fits}}})
    one_source = {"not": {"required": ["sample", "image"]}}
    return body(props, [{"oneOf": ONE_PIPELINE}, {"anyOf": per_sample}, one_source],
                f"The original body ({{\"filters\": [\"resize\", \"blur\"]}}), run in-process over `image_count` "
                f"copies of the image (default: the small sample); at most {max_megapixels:g} megapixels of input "
                f"and 100 of output per request (413 beyond).")


def distributed_json() -> dict[str, Any]:
    props = {**pipeline_properties(), **options_properties(),
             "sample": {"type": "string", "enum": list(samples.SAMPLE_NAMES)},
             "image": {**BASE64, "maxLength": 1_000_000}}
    return body(props, [{"oneOf": ONE_PIPELINE}, {"not": {"required": ["sample", "image"]}}], "The original body; the image is the 4k sample unless `sample` or a "
                                       "base64 `image` is given.")


def pixel_art_json(max_wait: float) -> dict[str, Any]:
    spec = registry.FILTERS["pixelate"]
    by_name = {p.name: p for p in spec.params}
    props = {"image": {**BASE64, "maxLength": 1_000_000},
             "pixel_size": {**param_schema(by_name["block_size"]), "description": "pixelate.block_size"},
             "palette_size": param_schema(by_name["palette_size"]),
             "palette": param_schema(by_name["palette"]),
             "dither": {"oneOf": [{"type": "boolean"}, param_schema(by_name["dither"])],
                        "description": "true (floyd-steinberg), false (none), or a dither name"},
             "outline": param_schema(by_name["outline"]), "upscale": param_schema(by_name["upscale"]),
             "wait": {"type": "number", "minimum": 0, "maximum": max_wait,
                      "description": "seconds to wait for the result (202 with the task id after)"},
             **options_properties()}
    return {"type": "object", "additionalProperties": False, "required": ["image"], "properties": props}
