"""Whose identity a reenacted face carries, read from the regressor's identity coefficients.

The question: is the output's fitted identity closer to the source's than to the driving
person's? The regressor's identity drifts with expression (``benchmarks/identity_drift.py``),
and the three faces compared show different expressions: the output and the driving frame share
one, the source photo has its own. Read as fitted, the shared expression pulls the output
towards the driver even when it is the source person. Two readings are given:

- ``as_fitted``: the fitted identities compared as they are;
- ``expression_matched``: each reference is first carried by the drift to the output's fitted
  expression (the identity that person would show with that expression), so the comparison tests
  "the output is the source person" against "the output is the driving person" without handing
  either the advantage of a shared expression.

:func:`faithful_output_votes` predicts, from the drift, the ``as_fitted`` votes of an output
that is exactly the source person making the driving expression changes: the most any method
can score on that reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facereenact.face3d.params import FaceParams


@dataclass(frozen=True)
class FittedIdentities:
    """Identity (N, 40) and expression (N, 10) coefficients of N fitted faces, as numpy arrays."""

    shape: np.ndarray
    expression: np.ndarray

    @staticmethod
    def of(params: FaceParams) -> FittedIdentities:
        return FittedIdentities(params.shape.detach().cpu().double().numpy(), params.expression.detach().cpu().double().numpy())

    def at_expression(self, expression: np.ndarray, drift: np.ndarray) -> np.ndarray:
        """The identities these faces would show with ``expression`` (N, 10) instead of their own."""
        return self.shape + (expression - self.expression) @ drift.T


def _closer(output: np.ndarray, source: np.ndarray, driving: np.ndarray, scale: np.ndarray) -> np.ndarray:
    to_source = np.linalg.norm((output - source) / scale, axis=-1)
    to_driving = np.linalg.norm((output - driving) / scale, axis=-1)
    return to_source < to_driving


def identity_votes(output: FittedIdentities, source: FittedIdentities, driving: FittedIdentities, drift: np.ndarray, scale: np.ndarray) -> dict[str, np.ndarray]:
    """Per output frame, whether its identity is closer to the source's (batch 1 or N) than to the
    driving frame's (N), in units of ``scale`` (40,), the coefficients' spread over faces."""
    return {
        "as_fitted": _closer(output.shape, source.shape, driving.shape, scale),
        "expression_matched": _closer(
            output.shape, source.at_expression(output.expression, drift), driving.at_expression(output.expression, drift), scale
        ),
    }


def faithful_output_votes(source: FittedIdentities, driving: FittedIdentities, reference: FittedIdentities, drift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The ``as_fitted`` votes of a faithful relative-mode output: the source person (batch 1)
    with the driving frames' (N) change of expression since ``reference`` (batch 1)."""
    expression = source.expression + driving.expression - reference.expression
    return _closer(source.at_expression(expression, drift), source.shape, driving.shape, scale)
