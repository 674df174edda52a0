"""The Kuhn-Munkres matching of the official CULane evaluator (SCNN ``hungarianGraph.hpp``).

It is a maximum-weight bipartite matching whose equality graph uses a 1e-2 tolerance, so on near-ties it can
return a matching a little below the optimum, and which one depends on the visiting order. A generic
assignment solver (``scipy.optimize.linear_sum_assignment``) returns the exact optimum instead and can then
count a different number of true positives; this module repeats the official algorithm step by step so the
counts agree.
"""

import math

import numpy as np

_TOLERANCE = 1e-2
_NO_SLACK = 1e10


def official_km_match(weights: np.ndarray) -> tuple[list[int], list[int]]:
    """Match the rows of ``weights`` (R x C, R <= C, NaN allowed) to its columns.

    Returns (column of each row, row of each column), -1 where unmatched.

    Rows are inserted one after the other; a row that cannot be augmented through tight edges lowers the
    labels by the smallest slack and retries. NaN weights never form a tight edge and never give the slack; if
    no slack is left at all the official loop stops, leaving that row and all later rows unmatched.
    """
    rows, cols = weights.shape
    if rows > cols:
        raise ValueError(f"official_km_match needs rows <= columns, got {rows} x {cols}")
    mat = weights.tolist()
    left_weight = []
    for row in mat:
        best = -1e5
        for value in row:
            if best < value:
                best = value
        left_weight.append(best)
    right_weight = [0.0] * cols
    left_match = [-1] * rows
    right_match = [-1] * cols
    left_used = [False] * rows
    right_used = [False] * cols

    def augment(u: int) -> bool:
        left_used[u] = True
        for v in range(cols):
            if not right_used[v] and math.fabs(left_weight[u] + right_weight[v] - mat[u][v]) < _TOLERANCE:
                right_used[v] = True
                if right_match[v] == -1 or augment(right_match[v]):
                    right_match[v] = u
                    left_match[u] = v
                    return True
        return False

    for u in range(rows):
        while True:
            left_used[:] = [False] * rows
            right_used[:] = [False] * cols
            if augment(u):
                break
            slack = _NO_SLACK
            for i in range(rows):
                if left_used[i]:
                    for j in range(cols):
                        if not right_used[j]:
                            candidate = left_weight[i] + right_weight[j] - mat[i][j]
                            # std::min(slack, candidate): a NaN candidate never replaces the slack.
                            if candidate < slack:
                                slack = candidate
            if slack == _NO_SLACK:
                return left_match, right_match
            for i in range(rows):
                if left_used[i]:
                    left_weight[i] -= slack
            for j in range(cols):
                if right_used[j]:
                    right_weight[j] += slack
    return left_match, right_match


def match_gt_to_predictions(similarity: np.ndarray) -> list[int]:
    """The prediction matched to each GT row of ``similarity`` (GT x predictions), or -1: official makeMatch.

    The official tool puts the smaller side on the left: with more GT lanes than predictions it matches the
    transposed matrix and reads the assignment back from the other side.
    """
    num_gt, num_pred = similarity.shape
    if num_gt <= num_pred:
        return official_km_match(similarity)[0]
    return official_km_match(similarity.T)[1]
