"""Training augmentation (MODEL.md 4.6) with albumentations, applied jointly to image, lane points and mask.

The reference uses imgaug; each op maps to its albumentations equivalent with the same probability:

- Resize 320×800 (imgaug: cubic) → Resize(INTER_CUBIC, mask nearest), p 1
- HorizontalFlip p 0.5 → HorizontalFlip(p=0.5)
- ChannelShuffle p 0.1 → ChannelShuffle(p=0.1)
- MultiplyAndAddToBrightness(mul 0.85–1.15, add −10–10) p 0.6 → Sequential[MultiplicativeNoise(0.85–1.15),
  RandomBrightnessContrast(brightness ±10/255, no contrast)] p 0.6
- AddToHueAndSaturation(−10–10) p 0.7 → HueSaturationValue(hue ±7, saturation ±10, value 0) p 0.7
  (imgaug's hue range is 0–255, OpenCV's 0–180)
- OneOf{MotionBlur k 3–5, MedianBlur k 3–5} p 0.2 → OneOf{MotionBlur((3, 5)), MedianBlur((3, 5))} p 0.2
- Affine(translate ±10 %, rotate ±10°, scale 0.8–1.2) p 0.7 → Affine(same ranges, bilinear, zero fill) p 0.7
- Resize 320×800 → Resize, p 1

Lanes travel as keypoints (kept even when outside the image) and are clipped to the image afterwards like
imgaug's ``clip_out_of_image``: a lane that leaves and re-enters the image becomes two lanes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np


def _resize(img_w: int, img_h: int) -> A.Resize:
    return A.Resize(img_h, img_w, interpolation=cv2.INTER_CUBIC, mask_interpolation=cv2.INTER_NEAREST, p=1.0)


def build_transform(
    img_w: int = 800, img_h: int = 320, train: bool = True, seed: int | None = None
) -> A.Compose:
    """The reference pipeline (train) or only the resize (test), with lane points as ``xy`` keypoints."""
    ops: list = [_resize(img_w, img_h)]
    if train:
        ops += [
            A.HorizontalFlip(p=0.5),
            A.ChannelShuffle(p=0.1),
            A.Sequential(
                [
                    A.MultiplicativeNoise(
                        multiplier=(0.85, 1.15), per_channel=False, elementwise=False, p=1.0
                    ),
                    A.RandomBrightnessContrast(brightness_limit=10 / 255, contrast_limit=0.0, p=1.0),
                ],
                p=0.6,
            ),
            A.HueSaturationValue(hue_shift_limit=7, sat_shift_limit=10, val_shift_limit=0, p=0.7),
            A.OneOf([A.MotionBlur(blur_limit=(3, 5)), A.MedianBlur(blur_limit=(3, 5))], p=0.2),
            A.Affine(
                translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)},
                rotate=(-10, 10),
                scale=(0.8, 1.2),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=0.7,
            ),
            _resize(img_w, img_h),
        ]
    return A.Compose(
        ops,
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False, check_each_transform=False),
        seed=seed,
    )


def clip_polyline(points: np.ndarray, width: float, height: float) -> list[np.ndarray]:
    """Parts of a polyline inside the box [0, width] × [0, height], split where it leaves the box."""
    pieces: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    for a, b in itertools.pairwise(points):
        segment = _clip_segment(a, b, width, height)
        if segment is None:
            if current:
                pieces.append(current)
                current = []
            continue
        p, q, entered_at_a, leaves_at_b = segment
        if current and not entered_at_a:
            pieces.append(current)
            current = []
        if not current:
            current = [p]
        current.append(q)
        if not leaves_at_b:
            pieces.append(current)
            current = []
    if current:
        pieces.append(current)
    out = []
    for piece in pieces:
        arr = np.asarray(piece, dtype=np.float64)
        keep = np.ones(len(arr), bool)
        keep[1:] = np.any(np.abs(np.diff(arr, axis=0)) > 1e-9, axis=1)
        if keep.sum() >= 1:
            out.append(arr[keep])
    return out


def _clip_segment(a: np.ndarray, b: np.ndarray, width: float, height: float):
    """Liang–Barsky: the part (p, q) of segment a→b inside the box, and whether p is a and q is b."""
    d = b - a
    t0, t1 = 0.0, 1.0
    for p, q in ((-d[0], a[0]), (d[0], width - a[0]), (-d[1], a[1]), (d[1], height - a[1])):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return a + t0 * d, a + t1 * d, t0 == 0.0, t1 == 1.0


def apply_transform(
    transform: A.Compose, image: np.ndarray, lanes: Sequence[np.ndarray], mask: np.ndarray | None = None
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    """Transform image, lanes ((N, 2) x, y each) and optional mask together; lanes come back clipped."""
    lanes = [np.asarray(lane, dtype=np.float64).reshape(-1, 2) for lane in lanes]
    keypoints = np.concatenate(lanes) if lanes else np.zeros((0, 2))
    data = {"image": image, "keypoints": keypoints}
    if mask is not None:
        data["mask"] = mask
    result = transform(**data)
    moved = np.asarray(result["keypoints"], dtype=np.float64).reshape(-1, 2)
    height, width = result["image"].shape[:2]
    out = []
    start = 0
    for lane in lanes:
        out += clip_polyline(moved[start : start + len(lane)], width, height)
        start += len(lane)
    return result["image"], out, result.get("mask")
