"""The lane row: one layout shared by the head, the training targets, decoding, the lane NMS and export.

Every prior, prediction and encoded target is a row of ``ROW_WIDTH`` = 78 values (MODEL.md section 0)::

    [logit0, logit1, start_y, start_x, theta, length, x_0 .. x_71]

``x_r`` is the lane's x at row ``r``, counted from the bottom of the network input (row 0 = bottom, row 71 =
top, at the normalised heights :func:`prior_ys`). The head predicts normalised values (start_y and length in
strips, start_x and xs over ``img_w - 1``, theta over pi); encoded targets hold start_x and xs in input
pixels and length in rows, and mark a lane with logits (0, 1), padding with (1, 0).

The reference's lane NMS kernel reads a 77-wide row: the same without theta, length in rows and xs in
pixels (``NMS_*`` below). Official checkpoints, the NMS kernel and exported engines all fix 72 rows and
192 priors, so presets cannot change them (``config`` rejects other values).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

NUM_OFFSETS = 72  # rows of a lane
NUM_STRIPS = NUM_OFFSETS - 1  # gaps between them: start_y and length are fractions of this
NUM_PRIORS = 192
ROW_WIDTH = 6 + NUM_OFFSETS

NEGATIVE_LOGIT, POSITIVE_LOGIT = 0, 1
START_Y, START_X, THETA, LENGTH = 2, 3, 4, 5
LOGITS = slice(NEGATIVE_LOGIT, POSITIVE_LOGIT + 1)
LINE = slice(START_Y, THETA + 1)  # start_y, start_x, theta: the straight line a prior stands for
GEOMETRY = slice(START_Y, LENGTH + 1)  # the line and the length: what the regression loss compares
XS = slice(LENGTH + 1, ROW_WIDTH)

# The NMS kernel's row: [logit0, logit1, start_y, start_x, length, 72 xs].
NMS_LENGTH = 4
NMS_FIRST_X = 5
NMS_XS = slice(NMS_FIRST_X, NMS_FIRST_X + NUM_OFFSETS)
NMS_ROW_WIDTH = NMS_FIRST_X + NUM_OFFSETS


def prior_ys() -> "torch.Tensor":
    """Normalised image y (0 = top, 1 = bottom) of each row, bottom row first: float32 linspace(1, 0).

    This is the head's ``prior_ys`` buffer; decoding uses the same float32 values so that it matches the
    reference to the last bit (torch's float32 linspace, which numpy's does not reproduce bit for bit).
    """
    import torch  # here, so that presets and the torch-free tools read the constants without torch

    return torch.linspace(1, 0, steps=NUM_OFFSETS, dtype=torch.float32)
