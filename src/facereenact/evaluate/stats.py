"""Aggregates over clips with 95 % bootstrap intervals (jackknife for set statistics), and JSON
that holds no NaN.

Clips are the unit of resampling (frames of one clip are not independent). A metric a clip could
not measure is None in its record and left out of the aggregate (``n`` says how many clips
count). +inf (the PSNR of identical images) is kept: a mean over an infinite value is infinite,
and the interval's ends are order statistics of the resampled means (no interpolation between
inf and a finite value, which would give NaN). JSON has no infinity, so it is written as the
string ``"inf"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CONFIDENCE = 0.95


def summarize(values: Sequence[float | None], resamples: int, rng: np.random.Generator) -> dict[str, Any]:
    """Mean over clips, its bootstrap interval, how many clips count and how many are infinite."""
    finite_or_inf = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    summary: dict[str, Any] = {"mean": None, "ci95": None, "n": len(finite_or_inf)}
    if np.isinf(finite_or_inf).any():
        summary["n_infinite"] = int(np.isinf(finite_or_inf).sum())
    if not len(finite_or_inf):
        return summary
    summary["mean"] = float(finite_or_inf.mean())
    if len(finite_or_inf) > 1 and resamples > 0:
        picks = rng.integers(0, len(finite_or_inf), size=(resamples, len(finite_or_inf)))
        summary["ci95"] = _interval(finite_or_inf[picks].mean(1))
    return summary


def jackknife_statistic(groups: Sequence[Any], statistic: Callable[[Sequence[Any]], float]) -> dict[str, Any]:
    """A statistic of all groups (clips) with a 95 % normal interval from the leave-one-out
    jackknife. For set statistics such as a Fréchet distance the bootstrap is wrong: resampling
    with replacement duplicates samples, which biases the statistic (its resampled values need not
    even bracket the estimate); leaving one group out duplicates nothing. The interval's lower
    end is clamped at 0 (the statistics given here are distances)."""
    value = statistic(groups)
    summary: dict[str, Any] = {"mean": value, "ci95": None, "n": len(groups)}
    if len(groups) > 2:
        leave_one_out = np.array([statistic([g for j, g in enumerate(groups) if j != i]) for i in range(len(groups))])
        if np.isfinite(leave_one_out).all():
            spread = math.sqrt((len(groups) - 1) / len(groups) * float(((leave_one_out - leave_one_out.mean()) ** 2).sum()))
            z = 1.959963984540054
            summary["ci95"] = [max(value - z * spread, 0.0), value + z * spread]
    return summary


def _interval(estimates: np.ndarray) -> list[float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low = np.percentile(estimates, tail, method="lower")
    high = np.percentile(estimates, 100 - tail, method="higher")
    return [float(low), float(high)]


def mean_or_none(values: np.ndarray) -> float | None:
    """Mean of the measured (non-NaN) values, None when nothing was measured; +inf stays +inf."""
    kept = np.asarray(values, np.float64)
    kept = kept[~np.isnan(kept)]
    return float(kept.mean()) if len(kept) else None


def jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars and arrays to Python, NaN to None, ±inf to ``"inf"``/``"-inf"``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        return number
    return value
