"""Decode + NMS benchmark: the batched implementation against the reference's per-lane Python loops.

Predictions are built from the student's prior lines (so candidate lanes overlap like real ones) with a chosen
number of candidates above the score threshold per image; a randomly initialised network would give either
none or all 192. The reference side also builds a spline object per kept lane, as the official ``Lane`` class
does in its constructor.
"""

import numpy as np
import torch
from scipy.interpolate import InterpolatedUnivariateSpline

from benchmarks import Settings, measure_interleaved, timing_table
from clrkdnet_core.config import load_preset
from clrkdnet_core.lane_format import (
    LENGTH,
    LOGITS,
    NEGATIVE_LOGIT,
    NUM_OFFSETS,
    NUM_PRIORS,
    POSITIVE_LOGIT,
    XS,
)
from clrkdnet_core.models import build_model
from clrkdnet_core.postprocess.decode import decode_predictions
from clrkdnet_core.postprocess.reference import reference_decode

PRESET = "clrkdnet_resnet18_culane"
CANDIDATES = (8, 48, NUM_PRIORS)


def synthetic_predictions(priors: torch.Tensor, batch: int, candidates: int, seed: int = 0) -> torch.Tensor:
    """(batch, 192, 78) predictions: ``candidates`` priors per image score above 0.5, the others below 0.1."""
    generator = torch.Generator().manual_seed(seed)
    num_priors = priors.shape[0]
    pred = priors.float().repeat(batch, 1, 1)
    logits = torch.full((batch, num_priors), -3.0)
    for image in range(batch):
        chosen = torch.randperm(num_priors, generator=generator)[:candidates]
        logits[image, chosen] = torch.rand(candidates, generator=generator) * 4.0
    pred[..., NEGATIVE_LOGIT] = 0.0
    pred[..., POSITIVE_LOGIT] = logits
    pred[..., LENGTH] = 0.3 + 0.6 * torch.rand((batch, num_priors), generator=generator)
    pred[..., XS] += 0.01 * torch.randn((batch, num_priors, NUM_OFFSETS), generator=generator)
    return pred


def reference_lanes_with_splines(pred: torch.Tensor, preset) -> list:
    """The reference's decoding, plus the spline each official ``Lane`` object fits on construction."""
    geometry, test = preset.geometry, preset.test
    decoded = reference_decode(pred, geometry, test)
    for lanes in decoded:
        for lane in lanes:
            points = lane.points.astype(np.float64)
            InterpolatedUnivariateSpline(points[:, 1], points[:, 0], k=min(3, len(points) - 1))
    return decoded


def postprocess_section(settings: Settings) -> list[str]:
    """Markdown: decode+NMS latency of both implementations for several candidate counts and batch sizes."""
    preset = load_preset(PRESET)
    priors = build_model(PRESET).heads.priors.detach()
    test = preset.test
    lines = [
        "Predictions: the student's prior lines plus noise, N candidates per image above the threshold.",
        "",
    ]
    for batch in (1, 8):
        for candidates in CANDIDATES:
            pred = synthetic_predictions(priors, batch, candidates)
            contenders = {
                "ours (batched PyTorch, CPU)": lambda pred=pred: decode_predictions(
                    pred, preset.geometry, test
                ),
                "reference (per-lane Python loops)": lambda pred=pred: reference_lanes_with_splines(
                    pred, preset
                ),
            }
            timings = measure_interleaved(
                contenders,
                settings.iterations[1] * 2,
                settings.warmup,
                batch,
                description=f"decode b{batch} n{candidates}",
            )
            lines.append(f"**batch {batch}, {candidates} candidates per image**")
            lines.append("")
            lines += timing_table(list(timings.items()), baseline="reference (per-lane Python loops)")
            lines.append("")
    if torch.cuda.is_available():
        lines += _gpu_nms_lines(priors, settings)
    return lines


def _gpu_nms_lines(priors: torch.Tensor, settings: Settings) -> list[str]:
    from clrkdnet_core.postprocess import nms, nms_triton
    from clrkdnet_core.postprocess.decode import nms_rows

    device = torch.device("cuda")
    preset = load_preset(PRESET)
    pred = synthetic_predictions(priors, 8, 48).to(device)
    rows = nms_rows(pred, preset.geometry.img_w)
    scores = torch.softmax(pred[..., LOGITS], dim=-1)[..., POSITIVE_LOGIT]
    eligible = scores >= preset.test.conf_threshold
    args = (rows, scores, eligible, preset.test.nms_thres, preset.test.max_lanes)
    timings = measure_interleaved(
        {
            "lane NMS, PyTorch on GPU": lambda: nms.lane_nms_batched(*args),
            "lane NMS, Triton kernels": lambda: nms_triton.lane_nms_batched(*args),
        },
        settings.iterations[1] * 4,
        settings.warmup + 2,
        8,
        sync=torch.cuda.synchronize,
        description="gpu nms",
    )
    return [
        f"**GPU lane NMS alone ({torch.cuda.get_device_name(0)}), batch 8, 48 candidates**",
        "",
        *timing_table(list(timings.items()), baseline="lane NMS, PyTorch on GPU"),
        "",
    ]
