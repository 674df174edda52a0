"""Lane priors: the initial (start_y, start_x, theta) table, the sampling rows and the line equation.

Rows and units are those of :mod:`clrkdnet_core.lane_format` (row 0 = bottom; x and start_x normalised by
(img_w - 1), start_y by the number of strips, theta by pi; MODEL.md sections 0 and 1.4).
"""

import math

import numpy as np
import torch
from torch import Tensor

from clrkdnet_core.lane_format import LINE, ROW_WIDTH, XS


def sample_x_indexs(num_points: int, sample_points: int) -> Tensor:
    """The rows (int64) at which the priors sample feature maps: floor(linspace(0, 1) * n_strips)."""
    return (torch.linspace(0, 1, steps=sample_points, dtype=torch.float32) * (num_points - 1)).long()


def prior_feat_ys(sample_rows: Tensor, num_points: int) -> Tensor:
    """Normalised image y of the sample rows, top to bottom (the order of the pooled features)."""
    return torch.flip(1 - sample_rows.float() / (num_points - 1), dims=[-1])


def initial_prior_embeddings(num_priors: int) -> Tensor:
    """(num_priors, 3) start_y, start_x, theta: 1/8 on the left edge, 3/4 on the bottom, 1/8 on the right."""
    left = num_priors // 8
    bottom = num_priors * 3 // 4
    strip = 0.5 / (left // 2 - 1)
    bottom_strip = 1 / (bottom // 4 + 1)
    table = np.zeros((num_priors, 3))
    i = np.arange(left)
    table[:left] = np.stack([(i // 2) * strip, np.zeros(left), np.where(i % 2 == 0, 0.16, 0.32)], axis=1)
    i = np.arange(left, left + bottom)
    table[left : left + bottom] = np.stack(
        [np.zeros(bottom), ((i - left) // 4 + 1) * bottom_strip, 0.2 * (i % 4 + 1)], axis=1
    )
    i = np.arange(left + bottom, num_priors)
    table[left + bottom :] = np.stack(
        [((i - left - bottom) // 2) * strip, np.ones(len(i)), np.where(i % 2 == 0, 0.68, 0.84)], axis=1
    )
    # computed in double like the reference's Python floats, then rounded once to float32
    return torch.from_numpy(table).float()


def line_xs(params: Tensor, one_minus_ys: Tensor, img_w: int, img_h: int) -> Tensor:
    """x / (img_w - 1) at every row of the lines through (start_y, start_x) with angle theta * pi.

    ``params`` (..., 3) = start_y, start_x, theta; ``one_minus_ys`` = 1 - ``lane_format.prior_ys()``.
    Returns (..., num_points).
    The operation order is the reference's, so results match it to the last bit.
    """
    start_y, start_x, theta = params[..., 0:1], params[..., 1:2], params[..., 2:3]
    return (start_x * (img_w - 1) + (one_minus_ys - start_y) * img_h / torch.tan(theta * math.pi + 1e-5)) / (
        img_w - 1
    )


def priors_from_embeddings(
    embeddings: Tensor, prior_ys: Tensor, sample_rows: Tensor, img_w: int, img_h: int
) -> tuple[Tensor, Tensor]:
    """The (P, 78) prior table (zeros except start_y, start_x, theta and xs) and its xs at the sample rows
    (P, sample_points); differentiable in ``embeddings``."""
    xs = line_xs(embeddings, 1 - prior_ys, img_w, img_h)
    priors = embeddings.new_zeros((embeddings.shape[0], ROW_WIDTH))
    priors[:, LINE] = embeddings
    priors[:, XS] = xs
    return priors, xs[:, sample_rows]
