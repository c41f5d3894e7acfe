"""Length statistics from counts per length: the statistics module's answers, in bounded memory."""

from __future__ import annotations

import random
import statistics

from humpback.core.stats import LengthCounts, length_stats


def _by_the_statistics_module(values: list[int]) -> dict:
    return {"count": len(values), "mean": round(statistics.fmean(values), 1),
            "std": round(statistics.pstdev(values), 1), "min": min(values),
            "median": float(statistics.median(values)), "max": max(values)}


def test_counts_give_the_statistics_modules_answers():
    rng = random.Random(0)
    for _ in range(3000):
        values = [rng.randint(0, rng.choice([3, 50, 3000, 200_000])) for _ in range(rng.randint(1, 41))]
        assert length_stats(values) == _by_the_statistics_module(values), values


def test_empty_is_zeros():
    assert length_stats([]) == LengthCounts().stats() == {"count": 0, "mean": 0.0, "std": 0.0, "min": 0,
                                                          "median": 0.0, "max": 0}


def test_a_stream_of_lengths_holds_one_entry_per_distinct_length():
    counts, rng = LengthCounts(), random.Random(1)
    for _ in range(200_000):
        counts.add(rng.randint(600, 3000))
    assert len(counts) <= 2401 and counts.stats()["count"] == 200_000
