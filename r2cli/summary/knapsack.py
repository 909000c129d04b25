"""Exact 0/1 knapsack on integer weights (clip units), with a documented tie-break.

Among all subsets whose total weight fits the capacity, the one returned has
1. the largest total value, values first rounded to whole multiples of ``tolerance`` (so two
   totals that differ only by float noise are equal, and equality is exact and transitive), then
2. the smallest total weight (the shortest summary that reaches that value), then
3. the earliest items: scanning items in index order, an item is taken whenever taking it
   still allows an optimum under rules 1 and 2 (the lexicographically first inclusion vector).
"""

from __future__ import annotations

from r2cli.errors import UsageError


def knapsack(values, weights, capacity: int, *, tolerance: float | None = None) -> list[int]:
    """Indices (ascending) of the items chosen by the 0/1 knapsack.

    ``values`` are floats (may be negative: such items are never worth taking unless free of
    cost in value); ``weights`` positive integers; ``capacity`` a non-negative integer.
    ``tolerance`` defaults to 1e-9 × (1 + sum of |values|); each value is rounded to a whole
    multiple of it before the search, which then compares integers exactly. (Comparing float totals
    "within tolerance" instead is not transitive: near-ties chained through the dynamic program
    could add up to more than the tolerance.)

    Raises:
        UsageError: lengths differ, a weight is not a positive integer, capacity < 0, or a
            value is not finite.
    """
    import numpy as np

    value = np.asarray(values, dtype=np.float64)  # [n]
    weight_raw = np.asarray(weights)
    if value.ndim != 1 or weight_raw.shape != value.shape:
        raise UsageError(f"values and weights must be 1-D of equal length, got {value.shape} and {weight_raw.shape}")
    if not np.all(np.isfinite(value)):
        raise UsageError("knapsack values must be finite")
    if weight_raw.size and (np.any(weight_raw != np.round(weight_raw)) or np.any(weight_raw < 1)):
        raise UsageError("knapsack weights must be positive integers (clip counts)")
    if capacity < 0 or int(capacity) != capacity:
        raise UsageError(f"knapsack capacity must be a non-negative integer, got {capacity}")
    weight = weight_raw.astype(np.int64)
    capacity = int(capacity)
    n = value.shape[0]
    tol = 1e-9 * (1.0 + float(np.abs(value).sum())) if tolerance is None else tolerance
    if not tol > 0:
        raise UsageError(f"knapsack tolerance must be > 0, got {tol}")
    value = np.round(value / tol).astype(np.int64)  # [n] whole multiples of the tolerance (default: at most 1e9 in size)

    # best_value[i][c], best_weight[i][c]: optimum over items i..n-1 with capacity c.
    best_value = np.zeros((n + 1, capacity + 1), dtype=np.int64)
    best_weight = np.zeros((n + 1, capacity + 1), dtype=np.int64)
    take = np.zeros((n, capacity + 1), dtype=bool)
    for i in range(n - 1, -1, -1):
        skip_v, skip_w = best_value[i + 1], best_weight[i + 1]
        best_value[i], best_weight[i] = skip_v, skip_w
        w = int(weight[i])
        if w > capacity:
            continue
        cand_v = value[i] + skip_v[: capacity + 1 - w]  # taking item i at capacities w..capacity
        cand_w = w + skip_w[: capacity + 1 - w]
        cur_v, cur_w = skip_v[w:], skip_w[w:]
        better = (cand_v > cur_v) | ((cand_v == cur_v) & (cand_w <= cur_w))
        take[i, w:] = better
        best_value[i, w:] = np.where(better, cand_v, cur_v)
        best_weight[i, w:] = np.where(better, cand_w, cur_w)
    chosen, c = [], capacity
    for i in range(n):
        if take[i, c]:
            chosen.append(i)
            c -= int(weight[i])
    return chosen
