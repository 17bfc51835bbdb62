"""Every filter declared once: parameters, capability class, alpha behaviour, kernels.

The API builds its validation and `GET /api/filters/` from `FILTERS`, routing reads
`capability`, and the pipeline calls `spec.cpu` / `spec.gpu`. Kernels are resolved
lazily (`filters.cpu.<name>`, `filters.gpu.<name>`), so importing this module — the API
does — neither imports numba.cuda nor compiles anything.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from filters.errors import ValidationError
from filters.params import Param, ParamDeclarationError, fmt_value

CAPABILITY_CLASSES = ("io", "cpu")
DEVICES = ("auto", "cpu", "gpu")
MAX_STEPS = 32

# A rule sees the coerced parameters and returns an error message, or None when fine.
Rule = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class FilterSpec:
    """One filter: what it takes, which workers can run it, what it does to alpha."""

    name: str
    description: str
    params: tuple[Param, ...]
    capability: str
    alpha: str
    rules: tuple[Rule, ...] = ()
    rule_help: tuple[str, ...] = ()
    has_gpu: bool = True

    def __post_init__(self) -> None:
        if self.capability not in CAPABILITY_CLASSES:
            raise ParamDeclarationError(
                f"filter {self.name!r}: capability must be one of {CAPABILITY_CLASSES}"
            )
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ParamDeclarationError(f"filter {self.name!r}: duplicate parameter names")
        if len(self.rules) != len(self.rule_help):
            raise ParamDeclarationError(f"filter {self.name!r}: give one rule_help per rule")

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def cpu(self) -> Callable[..., Any]:
        """The numba CPU kernel `filters.cpu.<name>` (imported on first use)."""
        return getattr(importlib.import_module("filters.cpu"), self.name)

    @property
    def gpu(self) -> Callable[..., Any] | None:
        """The numba.cuda kernel `filters.gpu.<name>`, or None when there is none."""
        if not self.has_gpu:
            return None
        return getattr(importlib.import_module("filters.gpu"), self.name, None)

    def coerce_params(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults filled in, every value checked, the cross-parameter rules applied."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ValidationError(
                f"{self.name}: params must be an object, got {fmt_value(raw)}",
                {"filter": self.name},
            )
        unknown = [k for k in raw if k not in self.param_names]
        if unknown:
            expected = ", ".join(self.param_names) or "no parameters"
            raise ValidationError(
                f"unknown parameter {fmt_value(unknown[0])} for filter {self.name!r} "
                f"(expected: {expected})",
                {"filter": self.name, "param": unknown[0]},
            )
        values = {
            p.name: p.coerce(self.name, raw[p.name]) if p.name in raw else p.default
            for p in self.params
        }
        for rule in self.rules:
            problem = rule(values)
            if problem:
                raise ValidationError(f"{self.name}: {problem}", {"filter": self.name})
        return values

    def to_dict(self) -> dict[str, Any]:
        """The filter as JSON for GET /api/filters/."""
        return {
            "name": self.name,
            "description": self.description,
            "capability": self.capability,
            "alpha": self.alpha,
            "gpu": self.has_gpu,
            "params": [p.to_dict() for p in self.params],
            "rules": list(self.rule_help),
        }


@dataclass(frozen=True)
class Step:
    """One validated step of a pipeline: the filter's name and its full parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored in a task and accepted back by validate_steps."""
        return {"filter": self.name, "params": dict(self.params)}


# --- Cross-parameter rules ------------------------------------------------------------
def _resize_needs_a_size(values: dict[str, Any]) -> str | None:
    if values["width"] is None and values["height"] is None and values["scale"] is None:
        return "give width, height or scale"
    return None


def _resize_scale_alone(values: dict[str, Any]) -> str | None:
    if values["scale"] is not None and (values["width"] is not None or values["height"] is not None):
        return "scale cannot be combined with width or height"
    return None


# --- The filter set -------------------------------------------------------------------
_FACTOR_HELP = "1 leaves the image unchanged"

_SPECS: tuple[FilterSpec, ...] = (
    FilterSpec(
        name="resize",
        description="Resize to width and/or height (aspect kept when only one is given) or by scale.",
        params=(
            Param("width", "int", None, 1, 16384, nullable=True, help="target width in pixels"),
            Param("height", "int", None, 1, 16384, nullable=True, help="target height in pixels"),
            Param("scale", "float", None, 0.01, 16, nullable=True,
                  help="multiply both sides; excludes width/height"),
            Param("interpolation", "choice", "auto",
                  choices=("auto", "nearest", "bilinear", "area", "lanczos"),
                  help="auto = area when shrinking, bilinear when enlarging"),
        ),
        capability="io",
        alpha="resampled together with the colour channels",
        rules=(_resize_needs_a_size, _resize_scale_alone),
        rule_help=("one of width, height or scale is required",
                   "scale cannot be combined with width or height"),
    ),
    FilterSpec(
        name="blur",
        description="Gaussian blur, sigma = radius, border reflect-101.",
        params=(Param("radius", "float", 2.0, 0.1, 50, help="Gaussian sigma in pixels"),),
        capability="io",
        alpha="blurred the same way as the colour channels",
    ),
    FilterSpec(
        name="brightness",
        description="Multiply every channel by factor: clip(round(x * factor)).",
        params=(Param("factor", "float", 1.2, 0, 10, help=_FACTOR_HELP),),
        capability="io",
        alpha="unchanged",
    ),
    FilterSpec(
        name="contrast",
        description="Scale distances from the mean luma by factor (as Pillow's ImageEnhance.Contrast).",
        params=(Param("factor", "float", 1.2, 0, 10, help=_FACTOR_HELP),),
        capability="io",
        alpha="unchanged",
    ),
    FilterSpec(
        name="grayscale",
        description="Luma 0.299R + 0.587G + 0.114B (Pillow's 'L'), in all three colour channels.",
        params=(),
        capability="io",
        alpha="unchanged",
    ),
    FilterSpec(
        name="sharpen",
        description="Unsharp mask: clip(x + amount * (x - gaussian(x, radius))).",
        params=(
            Param("amount", "float", 1.0, 0, 10, help="strength; 0 leaves the image unchanged"),
            Param("radius", "float", 1.0, 0.1, 20, help="Gaussian sigma of the mask"),
        ),
        capability="cpu",
        alpha="sharpened the same way as the colour channels",
    ),
    FilterSpec(
        name="edges",
        description="Sobel 3x3 gradient magnitude of luma; with threshold, black/white edges.",
        params=(
            Param("threshold", "int", None, 0, 255, nullable=True,
                  help="255 where magnitude >= threshold else 0; null = magnitude"),
        ),
        capability="cpu",
        alpha="unchanged",
    ),
    FilterSpec(
        name="pixelate",
        description="Pixel art: block averaging, palette (fitted or fixed), dithering, outline.",
        params=(
            Param("block_size", "int", 8, 1, 256, help="side of a block in pixels"),
            Param("palette", "choice", "adaptive",
                  choices=("adaptive", "none", "gameboy", "pico-8", "cga", "grayscale-4"),
                  help="adaptive = fitted to the image; none = plain block averaging"),
            Param("palette_size", "int", 16, 2, 256, help="colours of the adaptive palette"),
            Param("method", "choice", "kmeans", choices=("kmeans", "median_cut"),
                  help="how the adaptive palette is fitted (deterministic)"),
            Param("dither", "choice", "none",
                  choices=("none", "floyd-steinberg", "floyd-steinberg-adaptive", "bayer"),
                  help="dithering when mapping to the palette; floyd-steinberg-adaptive "
                       "leaves flat areas clean and dithers less on edges"),
            Param("outline", "bool", False, help="darken blocks on strong luma edges"),
            Param("upscale", "bool", True, help="scale back to the input size (nearest)"),
        ),
        capability="cpu",
        alpha="block-averaged like the colour, never quantised",
    ),
)

FILTERS: dict[str, FilterSpec] = {spec.name: spec for spec in _SPECS}


# --- Validation -----------------------------------------------------------------------
def get_filter(name: Any) -> FilterSpec:
    """The spec for `name`, or ValidationError listing the known filters."""
    spec = FILTERS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValidationError(
            f"unknown filter {fmt_value(name)} (known: {', '.join(FILTERS)})",
            {"filter": name if isinstance(name, str) else fmt_value(name)},
        )
    return spec


def validate_step(raw: Any, index: int = 0) -> Step:
    """One step from `{"filter"|"name": ..., "params": {...}}` or a Step."""
    if isinstance(raw, Step):
        name, params = raw.name, raw.params
    elif isinstance(raw, Mapping):
        extra = [k for k in raw if k not in ("filter", "name", "params")]
        if extra:
            raise ValidationError(
                f"step {index + 1}: unknown key {fmt_value(extra[0])} "
                "(expected: filter, params)",
                {"step": index},
            )
        if "filter" in raw and "name" in raw and raw["filter"] != raw["name"]:
            raise ValidationError(f"step {index + 1}: 'filter' and 'name' disagree", {"step": index})
        name = raw.get("filter", raw.get("name"))
        if name is None:
            raise ValidationError(f"step {index + 1}: missing 'filter'", {"step": index})
        params = raw.get("params")
    elif isinstance(raw, str):
        name, params = raw, None
    else:
        raise ValidationError(
            f"step {index + 1} must be an object like {{\"filter\": \"blur\", \"params\": {{}}}}, "
            f"got {fmt_value(raw)}",
            {"step": index},
        )
    spec = get_filter(name)
    try:
        return Step(spec.name, spec.coerce_params(params))
    except ValidationError as exc:
        exc.details.setdefault("step", index)   # which step, when a pipeline repeats a filter
        raise


def validate_steps(raw: Any) -> list[Step]:
    """A checked list of Steps (1..32) from any accepted form, or ValidationError.

    Accepted: a list of step objects / Step / bare filter names, or the original
    system's body `{"filters": [...], "filter_params": {...}}`.
    """
    if isinstance(raw, Mapping) and "filters" in raw:
        return steps_from_filters(raw.get("filters"), raw.get("filter_params"))
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Iterable):
        raise ValidationError(f"steps must be a list, got {fmt_value(raw)}")
    items = list(raw)
    _check_count(len(items))
    return [validate_step(item, i) for i, item in enumerate(items)]


# The original system's scripts send `{"filters": ["resize", "blur"]}` with no parameters;
# a resize given no size there gets the size of the original system's example body
# (800x600), so those scripts run unchanged. Only the `filters` form: `steps` stays strict.
ORIGINAL_FORM_DEFAULTS: dict[str, dict[str, Any]] = {"resize": {"width": 800, "height": 600}}
RESIZE_SIZE_PARAMS = ("width", "height", "scale")


def _original_defaults(name: str, params: Any) -> Any:
    """`params` with ORIGINAL_FORM_DEFAULTS filled in when the original body left them out."""
    defaults = ORIGINAL_FORM_DEFAULTS.get(name)
    if defaults is None or (params is not None and not isinstance(params, Mapping)):
        return params
    params = dict(params or {})
    if name == "resize" and any(params.get(k) is not None for k in RESIZE_SIZE_PARAMS):
        return params
    return {**defaults, **params}


def steps_from_filters(filters: Any, filter_params: Any = None) -> list[Step]:
    """The original system's form: names in order, parameters keyed by filter name.

    A filter listed twice gets the same parameters both times. Parameters for a filter
    that is not in `filters` are an error (they would otherwise be silently ignored).
    A resize without width, height or scale gets ORIGINAL_FORM_DEFAULTS (800x600).
    """
    if isinstance(filters, str) or not isinstance(filters, list):
        raise ValidationError(f"filters must be a list of filter names, got {fmt_value(filters)}")
    if filter_params is None:
        filter_params = {}
    if not isinstance(filter_params, Mapping):
        raise ValidationError(
            f"filter_params must be an object keyed by filter name, got {fmt_value(filter_params)}"
        )
    for key in filter_params:
        if key not in filters:
            get_filter(key)  # an unknown name says so, listing the known filters
            raise ValidationError(
                f"filter_params has parameters for {key!r}, which is not in filters "
                f"({', '.join(map(str, filters)) or 'empty'})",
                {"filter": key},
            )
    _check_count(len(filters))
    steps = []
    for i, name in enumerate(filters):
        spec = get_filter(name)
        steps.append(Step(spec.name, spec.coerce_params(_original_defaults(spec.name, filter_params.get(name)))))
    return steps


def _check_count(n: int) -> None:
    if n < 1:
        raise ValidationError("a pipeline needs at least one step")
    if n > MAX_STEPS:
        raise ValidationError(f"a pipeline has at most {MAX_STEPS} steps, got {n}")


def required_capabilities(steps: Iterable[Any], device: str = "auto") -> frozenset[str]:
    """The capability classes a task needs: its filters' classes, plus gpu if insisted on."""
    if device not in DEVICES:
        raise ValidationError(f"device must be one of {', '.join(DEVICES)}, got {fmt_value(device)}")
    if not isinstance(steps, Mapping):
        steps = list(steps)
    if isinstance(steps, Mapping) or not all(isinstance(s, Step) and s.name in FILTERS for s in steps):
        steps = validate_steps(steps)  # raw forms are validated first
    caps = {FILTERS[s.name].capability for s in steps}
    if device == "gpu":
        caps.add("gpu")
    return frozenset(caps)


def describe() -> list[dict[str, Any]]:
    """The registry as JSON for GET /api/filters/, in declaration order."""
    return [spec.to_dict() for spec in FILTERS.values()]
