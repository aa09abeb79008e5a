"""Small summaries shared by the evaluations (mean and spread over runs, quantile windows)."""

from __future__ import annotations

import statistics


def share(flags: list[bool]) -> float:
    """Percentage of True; 0 for an empty list."""
    return 100.0 * sum(flags) / len(flags) if flags else 0.0


def mean_spread(values: list[float]) -> dict:
    """Mean and population standard deviation (0 for a single run), rounded for reports."""
    if not values:
        raise ValueError("no runs to summarise")
    return {
        "mean": round(statistics.fmean(values), 2),
        "std": round(statistics.pstdev(values), 2) if len(values) > 1 else 0.0,
        "runs": [round(v, 2) for v in values],
    }
