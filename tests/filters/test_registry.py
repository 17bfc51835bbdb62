"""The registry: declarations checked at import, validation messages, capabilities."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from filters.errors import ValidationError
from filters.params import Param, ParamDeclarationError
from filters.registry import (
    FILTERS,
    MAX_STEPS,
    FilterSpec,
    Step,
    describe,
    required_capabilities,
    steps_from_filters,
    validate_steps,
)


def error_of(raw) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_steps(raw)
    assert caught.value.http_status == 400 and caught.value.code == "invalid_steps"
    return caught.value.message


def test_the_filter_set_and_its_classes():
    assert list(FILTERS) == ["resize", "blur", "brightness", "contrast", "grayscale",
                             "sharpen", "edges", "pixelate"]
    classes = {name: spec.capability for name, spec in FILTERS.items()}
    assert {n for n, c in classes.items() if c == "io"} == {
        "resize", "blur", "brightness", "contrast", "grayscale"}
    assert {n for n, c in classes.items() if c == "cpu"} == {"sharpen", "edges", "pixelate"}
    for spec in FILTERS.values():
        assert spec.alpha and spec.description


def test_importing_the_registry_loads_no_numba():
    code = ("import sys, filters.registry as r; r.describe(); r.validate_steps(['blur']);"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("raw, message", [
    ([{"filter": "blur", "params": {"radius": 80}}], "blur.radius must be between 0.1 and 50, got 80"),
    ([{"filter": "resize", "params": {"width": "abc"}}], "resize.width must be an integer, got 'abc'"),
    ([{"filter": "brightness", "params": {"radius": 2}}],
     "unknown parameter 'radius' for filter 'brightness' (expected: factor)"),
    ([{"filter": "grayscale", "params": {"x": 1}}],
     "unknown parameter 'x' for filter 'grayscale' (expected: no parameters)"),
    ([{"filter": "blurr"}], "unknown filter 'blurr' (known: resize, blur, brightness, contrast, "
                            "grayscale, sharpen, edges, pixelate)"),
    ([{"filter": "blur", "params": {"radius": "3"}}], "blur.radius must be a number, got '3'"),
    ([{"filter": "blur", "params": {"radius": True}}], "blur.radius must be a number, got True"),
    ([{"filter": "blur", "params": {"radius": None}}], "blur.radius must not be null"),
    ([{"filter": "blur", "params": {"radius": float("nan")}}], "blur.radius must be a finite number"),
    ([{"filter": "blur", "params": {"radius": 10 ** 400}}], "blur.radius must be a finite number"),
    ([{"filter": "resize", "params": {"width": 10 ** 400}}], "resize.width must be between 1 and 16384"),
    ([{"filter": "resize", "params": {"width": 3.5}}], "resize.width must be an integer, got 3.5"),
    ([{"filter": "resize", "params": {"width": 0}}], "resize.width must be between 1 and 16384, got 0"),
    ([{"filter": "pixelate", "params": {"outline": 1}}], "pixelate.outline must be true or false, got 1"),
    ([{"filter": "pixelate", "params": {"palette": "Gameboy"}}],
     "pixelate.palette must be one of adaptive, none, gameboy, pico-8, cga, grayscale-4, got 'Gameboy'"),
    ([{"filter": "resize"}], "resize: give width, height or scale"),
    ([{"filter": "resize", "params": {"scale": 2, "width": 10}}],
     "resize: scale cannot be combined with width or height"),
    ([{"filter": "blur", "radius": 3}], "step 1: unknown key 'radius' (expected: filter, params)"),
    ([{"params": {}}], "step 1: missing 'filter'"),
    ([{"filter": "blur", "params": [1]}], "blur: params must be an object"),
    ([42], "step 1 must be an object"),
    ([], "a pipeline needs at least one step"),
    ("blur", "steps must be a list"),
    (None, "steps must be a list"),
])
def test_validation_messages(raw, message):
    assert message in error_of(raw)


def test_valid_steps_get_defaults_and_coerced_types():
    steps = validate_steps([
        {"filter": "blur", "params": {"radius": 3}},
        {"name": "resize", "params": {"width": 640.0}},
        {"filter": "edges"},
        Step("pixelate", {"block_size": 4}),
        "grayscale",
    ])
    assert steps[0] == Step("blur", {"radius": 3.0}) and isinstance(steps[0].params["radius"], float)
    assert steps[1].params == {"width": 640, "height": None, "scale": None, "interpolation": "auto"}
    assert isinstance(steps[1].params["width"], int)
    assert steps[2].params == {"threshold": None}
    assert steps[3].params["block_size"] == 4 and steps[3].params["palette"] == "adaptive"
    assert steps[4] == Step("grayscale", {})
    # The JSON form round-trips (this is what a task stores in Redis).
    again = validate_steps(json.loads(json.dumps([s.to_dict() for s in steps])))
    assert again == steps


def test_step_count_limit():
    assert len(validate_steps(["grayscale"] * MAX_STEPS)) == MAX_STEPS
    assert f"at most {MAX_STEPS} steps, got {MAX_STEPS + 1}" in error_of(["grayscale"] * (MAX_STEPS + 1))


def test_error_details_name_filter_and_param():
    with pytest.raises(ValidationError) as caught:
        validate_steps([{"filter": "sharpen", "params": {"amount": -1}}])
    assert caught.value.details == {"filter": "sharpen", "param": "amount", "value": -1, "step": 0}
    assert caught.value.to_dict()["code"] == "invalid_steps"


def test_original_system_body():
    body = {"filters": ["resize", "blur"], "filter_params": {"resize": {"width": 320}}}
    steps = validate_steps(body)
    assert [s.name for s in steps] == ["resize", "blur"]
    assert steps[0].params["width"] == 320 and steps[1].params == {"radius": 2.0}
    assert steps_from_filters(["brightness"]) == [Step("brightness", {"factor": 1.2})]
    with pytest.raises(ValidationError, match="parameters for 'sharpen', which is not in filters"):
        steps_from_filters(["blur"], {"sharpen": {"amount": 2}})
    with pytest.raises(ValidationError, match="unknown filter 'nope'"):
        steps_from_filters(["blur"], {"nope": {}})
    with pytest.raises(ValidationError, match="filters must be a list"):
        steps_from_filters("blur", {})
    with pytest.raises(ValidationError, match="filter_params must be an object"):
        steps_from_filters(["blur"], ["radius"])
    with pytest.raises(ValidationError, match="blur.radius must be between"):
        steps_from_filters(["blur"], {"blur": {"radius": 0}})


def test_required_capabilities_for_every_combination():
    names = list(FILTERS)
    for r in range(1, 4):
        for combo in itertools.combinations(names, r):
            raw = [{"filter": n, "params": {"width": 10} if n == "resize" else {}} for n in combo]
            steps = validate_steps(raw)
            expected = frozenset(FILTERS[n].capability for n in combo)
            assert required_capabilities(steps) == expected
            assert required_capabilities(steps, "cpu") == expected
            assert required_capabilities(steps, "gpu") == expected | {"gpu"}
            assert required_capabilities(raw) == expected  # raw dicts are validated first
    with pytest.raises(ValidationError, match="device must be one of auto, cpu, gpu"):
        required_capabilities(validate_steps(["blur"]), "tpu")


def test_describe_is_json_and_complete():
    described = json.loads(json.dumps(describe()))
    assert [d["name"] for d in described] == list(FILTERS)
    blur = described[1]
    assert blur["capability"] == "io" and blur["alpha"]
    assert blur["params"] == [{"name": "radius", "type": "float", "default": 2.0, "min": 0.1,
                               "max": 50, "choices": None, "nullable": False,
                               "help": "Gaussian sigma in pixels"}]
    resize = described[0]
    assert "scale cannot be combined with width or height" in resize["rules"]
    pixelate = next(d for d in described if d["name"] == "pixelate")
    assert {p["name"] for p in pixelate["params"]} == {
        "block_size", "palette", "palette_size", "method", "dither", "outline", "upscale"}


@pytest.mark.parametrize("kwargs, fix", [
    (dict(name="x", type="float", default=99, min=0, max=10), "default 99 is invalid"),
    (dict(name="x", type="choice", default="a"), "needs choices"),
    (dict(name="x", type="choice", default="c", choices=("a", "b")), "default 'c' is invalid"),
    (dict(name="x", type="int", default=1, min=5, max=1), "min (5) is greater than max (1)"),
    (dict(name="x", type="int", default=1), "needs both min and max"),
    (dict(name="x", type="str", default="a"), "type must be one of"),
    (dict(name="x", type="float", default=None, min=0, max=1), "nullable=True"),
    (dict(name="x y", type="bool", default=False), "identifier"),
    (dict(name="x", type="bool", default=1), "default 1 is invalid"),
])
def test_bad_declarations_fail_with_a_fix(kwargs, fix):
    with pytest.raises(ParamDeclarationError, match="parameter") as caught:
        Param(**kwargs)
    assert fix in str(caught.value)


def test_bad_filter_declarations():
    with pytest.raises(ParamDeclarationError, match="capability"):
        FilterSpec("x", "d", (), "gpu", "unchanged")
    with pytest.raises(ParamDeclarationError, match="duplicate"):
        FilterSpec("x", "d", (Param("a", "bool", False), Param("a", "bool", True)), "io", "-")


def test_kernels_resolve_lazily_to_cpu_and_gpu_modules():
    cpu = pytest.importorskip("filters.cpu")
    assert FILTERS["blur"].cpu is cpu.blur
    gpu = pytest.importorskip("filters.gpu")
    for name, spec in FILTERS.items():
        assert spec.gpu is getattr(gpu, name)


def test_odd_inputs_are_validation_errors():
    assert "steps must be a list" in error_of({"blur": {}})
    with pytest.raises(ValidationError, match="unknown filter 'nope'"):
        required_capabilities([Step("nope", {})])
    assert required_capabilities({"filters": ["edges"]}) == frozenset({"cpu"})
