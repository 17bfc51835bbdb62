"""Parameter declarations for filters, checked when declared and when used.

A `Param` is declared once in the registry. A bad declaration (a default out of its own
range, a choice without choices…) raises `ParamDeclarationError` at import, so it can
never reach a request. `Param.coerce` turns a JSON value into the declared type or
raises `ValidationError` with a message that names filter and parameter.

Coercion rules (JSON in, strict, no guessing):
- int: a JSON integer; a float with an integral value (3.0) is accepted as 3; 3.5, "3"
  and booleans are refused.
- float: a JSON number (integers accepted); strings, booleans, NaN and infinity refused.
- bool: only true/false; 0/1 and "true" are refused.
- choice: one of the declared strings, exactly (case-sensitive).
- None is accepted only for nullable parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from filters.errors import ValidationError

PARAM_TYPES = ("int", "float", "bool", "choice")


class ParamDeclarationError(ValueError):
    """A filter's parameter is declared inconsistently: a programming error, found at import."""


def fmt_value(value: Any) -> str:
    """A value as a message shows it: 50.0 -> 50, 0.1 -> 0.1, 'abc' -> 'abc'."""
    if isinstance(value, bool) or value is None:
        return repr(value) if value is not None else "null"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Param:
    """One parameter of a filter: its type, default, bounds or choices, and help text."""

    name: str
    type: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)
    nullable: bool = False
    help: str = ""

    def __post_init__(self) -> None:
        problem = self._declaration_problem()
        if problem:
            raise ParamDeclarationError(f"parameter {self.name!r}: {problem}")

    def _declaration_problem(self) -> str | None:
        """What is wrong with this declaration, or None. Says what to fix."""
        if not self.name.isidentifier():
            return "name must be a Python identifier (it becomes a keyword argument)"
        if self.type not in PARAM_TYPES:
            return f"type must be one of {', '.join(PARAM_TYPES)}, not {self.type!r}"
        if self.type == "choice":
            if not self.choices or not all(isinstance(c, str) for c in self.choices):
                return "a choice parameter needs choices=(\"a\", \"b\", ...) of strings"
            if not isinstance(self.choices, tuple):
                return "choices must be a tuple"
            if self.min is not None or self.max is not None:
                return "a choice parameter takes no min/max"
        elif self.choices:
            return f"choices are only for type 'choice', not {self.type!r}"
        if self.type == "bool" and (self.min is not None or self.max is not None):
            return "a bool parameter takes no min/max"
        if self.type in ("int", "float"):
            if self.min is None or self.max is None:
                return "a numeric parameter needs both min and max"
            if self.min > self.max:
                return f"min ({self.min}) is greater than max ({self.max})"
        if self.default is None:
            if not self.nullable:
                return "default is None but nullable is False: give a default or nullable=True"
            return None
        try:
            self._check(self.default, "declaration")
        except ValidationError as exc:
            return f"default {fmt_value(self.default)} is invalid ({exc.message})"
        return None

    def coerce(self, filter_name: str, value: Any) -> Any:
        """The JSON `value` as this parameter's type, or ValidationError naming it."""
        if value is None:
            if self.nullable:
                return None
            raise ValidationError(
                f"{filter_name}.{self.name} must not be null",
                {"filter": filter_name, "param": self.name},
            )
        return self._check(value, filter_name)

    def _check(self, value: Any, filter_name: str) -> Any:
        label = f"{filter_name}.{self.name}"
        details = {"filter": filter_name, "param": self.name, "value": _jsonable(value)}

        def fail(message: str) -> ValidationError:
            return ValidationError(f"{label} {message}, got {fmt_value(value)}", details)

        if self.type == "bool":
            if not isinstance(value, bool):
                raise fail("must be true or false")
            return value
        if self.type == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise fail(f"must be one of {', '.join(self.choices)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "an integer" if self.type == "int" else "a number"
            raise fail(f"must be {kind}")
        if isinstance(value, float) and not math.isfinite(value):
            raise fail("must be a finite number")
        if self.type == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise fail("must be an integer")
                value = int(value)
        else:
            try:
                value = float(value)
            except OverflowError:  # a JSON integer with hundreds of digits
                raise fail("must be a finite number") from None
        if not (self.min <= value <= self.max):
            raise ValidationError(
                f"{label} must be between {fmt_value(self.min)} and {fmt_value(self.max)}, "
                f"got {fmt_value(value)}",
                details,
            )
        return value

    def to_dict(self) -> dict[str, Any]:
        """The declaration as JSON, for GET /api/filters/ and the docs."""
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "choices": list(self.choices) if self.choices else None,
            "nullable": self.nullable,
            "help": self.help,
        }


def _jsonable(value: Any) -> Any:
    """The offending value, safe to put into a JSON error body."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 53:
        return fmt_value(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return repr(value)[:200]
