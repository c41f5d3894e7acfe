"""Length statistics in the paper's Table 2 form (mean ± std), plus the spread a reader wants."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def length_stats(values: Sequence[int]) -> dict:
    """count, mean, std (population), min, median, max of a list of lengths; zeros when empty."""
    if not values:
        return {"count": 0, "mean": 0.0, "std": 0.0, "min": 0, "median": 0.0, "max": 0}
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 1),
        "std": round(statistics.pstdev(values), 1),
        "min": min(values),
        "median": float(statistics.median(values)),
        "max": max(values),
    }
