"""Typed, ranged option schemas of the front-ends and back-ends (``variants.<name>.options``).

Each front-end and back-end declares its options next to itself as a ``TypedDict`` of the
annotated types below (``total=False``: every option may be left out) and sets
``OPTIONS = option_names(ItsOptions)`` and ``OPTION_SPEC = ItsOptions``. :func:`check_options`
validates a variant's options with pydantic before anything is built (``params --check``, and
:func:`pipeline.models.zoo.build_model`): counts are integers >= 1, frequencies lie in
``(0, sample_rate / 2]``, numeric strings such as ``"1.0e9"`` (YAML 1.1 reads ``1.0e9`` as a
string) are turned into numbers and then range-checked, anything else is refused with one line
naming the option, its value and the allowed range.

.. code-block:: python

    class SincNetOptions(TypedDict, total=False):
        n_filters: Count
        min_band_hz: Frequency
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError, ValidationInfo
from typing_extensions import TypedDict

NYQUIST_NOTE = "sample_rate / 2"


def _number_from_string(value: Any) -> Any:
    """``"1.0e9"`` -> ``1e9`` (YAML 1.1 leaves such numbers strings); other strings stay as they are."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _below_nyquist(value: float, info: ValidationInfo) -> float:
    rate = (info.context or {}).get("sample_rate")
    if rate and value > rate / 2:
        raise ValueError(f"must be at most {NYQUIST_NOTE} = {rate / 2:g} Hz")
    return value


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError("must be odd")
    return value


Number = BeforeValidator(_number_from_string)
Count = Annotated[int, Number, Field(ge=1, strict=False)]
"""A whole number >= 1 (filters, bins, FFT size, hop, heads, layers)."""
Frequency = Annotated[float, Number, Field(gt=0), AfterValidator(_below_nyquist)]
"""Hz in ``(0, sample_rate / 2]``."""
FrequencyFloor = Annotated[float, Number, Field(ge=0), AfterValidator(_below_nyquist)]
"""Hz in ``[0, sample_rate / 2]`` (a lower edge that may be 0)."""
Positive = Annotated[float, Number, Field(gt=0)]
"""A real number > 0 (milliseconds, exponents, offsets)."""
Fraction = Annotated[float, Number, Field(gt=0, le=1)]
"""A real number in ``(0, 1]`` (smoothing coefficients)."""
UnitInterval = Annotated[float, Number, Field(ge=0, le=1)]
"""A real number in ``[0, 1]`` (a gain-normalisation exponent)."""
NonNegative = Annotated[float, Number, Field(ge=0)]
"""A real number >= 0 (an offset)."""
OddKernel = Annotated[int, Number, Field(ge=3), AfterValidator(_odd)]
"""An odd filter length >= 3."""


class NoOptions(TypedDict, total=False):
    """The spec of a part without options."""


def option_names(spec: type) -> frozenset[str]:
    """The option names a ``TypedDict`` spec declares."""
    return frozenset(spec.__annotations__)


@cache
def _adapter(spec: type) -> TypeAdapter:
    return TypeAdapter(spec)


def _describe(error: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    name = str(error["loc"][0]) if error["loc"] else "?"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown option {name!r}"
    return f"option {name!r} = {given.get(name)!r}: {message[0].lower() + message[1:]}"


def check_options(specs: Mapping[str, type], options: Mapping[str, Any], sample_rate: int) -> dict[str, dict[str, Any]]:
    """Validate ``options`` against the specs of a model's parts; return each part's typed options.

    Args:
        specs: ``{"frontend": FrontendOptions, "backend": BackendOptions}`` (``TypedDict`` specs).
        options: the variant's ``options`` (names of any part).
        sample_rate: the audio's rate, the bound of every frequency (``sample_rate / 2``).

    Returns:
        ``{part: {name: coerced value}}`` for the options given.

    Raises:
        ValueError: one line: an unknown option (with the allowed ones) or a value of the wrong
            type or range (the option, its value and the rule).
    """
    allowed = set().union(*(option_names(s) for s in specs.values()))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; allowed options: {sorted(allowed) or 'none'}")
    typed: dict[str, dict[str, Any]] = {}
    for part, spec in specs.items():
        mine = {k: v for k, v in options.items() if k in option_names(spec)}
        try:
            typed[part] = dict(_adapter(spec).validate_python(mine, context={"sample_rate": sample_rate}))
        except ValidationError as exc:
            raise ValueError(_describe(exc.errors()[0], mine)) from None
    merged = {k: v for part in typed.values() for k, v in part.items()}
    low, high = merged.get("f_min"), merged.get("f_max")
    if low is not None and high is not None and not low < high:
        raise ValueError(f"option 'f_min' = {low!r} must be below 'f_max' = {high!r}")
    return typed


class StftOptions(TypedDict, total=False):
    """Options of every STFT-based front-end."""

    n_fft: Count
    hop_length: Count


class MelOptions(StftOptions, total=False):
    """Options of the mel front-ends (``mel``, ``mfcc``, ``pcen``, ``trainable_mel``)."""

    n_mels: Count
    f_min: FrequencyFloor
    f_max: Frequency | None
    power: Positive
