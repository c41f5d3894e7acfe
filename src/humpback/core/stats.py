"""Length statistics in the paper's Table 2 form (mean ± std), plus the spread a reader wants."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from fractions import Fraction


class LengthCounts(Counter):
    """How many items had each length: the statistics of a stream of lengths in memory bounded by its
    distinct lengths (a few thousand for segments, whatever the number of segments), and exact."""

    def add(self, length: int) -> None:
        self[length] += 1

    def stats(self) -> dict:
        """count, mean, std (population), min, median, max; zeros when empty."""
        n = self.total()
        if not n:
            return {"count": 0, "mean": 0.0, "std": 0.0, "min": 0, "median": 0.0, "max": 0}
        total = sum(x * c for x, c in self.items())
        squares = sum(x * x * c for x, c in self.items())
        variance = Fraction(n * squares - total * total, n * n)  # exact: integer sums
        return {
            "count": n,
            "mean": round(total / n, 1),
            "std": round(math.sqrt(variance), 1),
            "min": min(self),
            "median": self._median(n),
            "max": max(self),
        }

    def _median(self, n: int) -> float:
        lower, upper = (n - 1) // 2, n // 2  # the middle positions (equal when n is odd)
        seen, low = 0, None
        for x in sorted(self):
            seen += self[x]
            if low is None and seen > lower:
                low = x
            if seen > upper:
                return (low + x) / 2
        raise AssertionError("unreachable: the counts sum to n")


def length_stats(values: Iterable[int]) -> dict:
    """count, mean, std (population), min, median, max of lengths; zeros when empty."""
    return LengthCounts(values).stats()
