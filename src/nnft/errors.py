"""One exception family for invalid input, with messages that say what to do.

Every error names the parameter, what it received and what is allowed, so the CLI can print it as
one line (exit code 2) and a user can fix the call without reading a traceback.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConfigError", "NonGaussianInputError", "check", "fail"]


class ConfigError(ValueError):
    """Invalid input: a parameter outside its allowed range, a malformed config, a bad array.

    The message always has the shape ``<where>.<parameter>: got <value>; allowed: <what>``.
    """


class NonGaussianInputError(ConfigError):
    """A closed-form dual kernel was asked for a pre-activation that is not Gaussian.

    Dual kernels E[σ(u)σ(v)] with (u, v) ~ N(0, Σ) assume Gaussian pre-activations. For a first layer
    with a non-Gaussian density (uniform weights, a uniform phase, a ball), use the single-neuron
    expectation of :func:`nnft.theory.first_layer_expectation`, which integrates the actual density.
    """


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(param: str, got: Any, allowed: str, *, cls: type[ConfigError] = ConfigError) -> ConfigError:
    """Build (not raise) a :class:`ConfigError` with the house message shape."""
    return cls(f"{param}: got {_short(got)}; allowed: {allowed}")


def check(condition: bool, param: str, got: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` unless ``condition`` holds."""
    if not condition:
        raise fail(param, got, allowed)
