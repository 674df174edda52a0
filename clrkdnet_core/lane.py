"""A detected lane: a polyline in original-image pixels with a confidence score."""

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Lane:
    """One lane as a polyline in the pixels of the image it was detected in.

    Attributes:
        points: (N, 2) float32 array of (x, y) pixel coordinates ordered top to bottom (y increasing).
        score: probability of the lane class (softmax of the two class logits), in [0, 1].
    """

    points: np.ndarray
    score: float

    def __post_init__(self) -> None:
        points = np.ascontiguousarray(self.points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"Lane points must have shape (N, 2), got {points.shape}")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "score", float(self.score))

    def __len__(self) -> int:
        return len(self.points)

    @property
    def xs(self) -> np.ndarray:
        """x coordinates, top to bottom."""
        return self.points[:, 0]

    @property
    def ys(self) -> np.ndarray:
        """y coordinates, increasing."""
        return self.points[:, 1]

    def scaled(self, sx: float, sy: float) -> "Lane":
        """The same lane in an image resized by ``sx`` horizontally and ``sy`` vertically."""
        return Lane(self.points * np.array([sx, sy], dtype=np.float32), self.score)

    def to_dict(self, decimals: int | None = None) -> dict[str, Any]:
        """JSON-friendly form ``{"score": float, "points": [[x, y], ...]}``, optionally rounded."""
        points = self.points.astype(np.float64)
        if decimals is None:
            return {"score": self.score, "points": points.tolist()}
        return {"score": round(self.score, decimals + 2), "points": np.round(points, decimals).tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Lane":
        """Inverse of :meth:`to_dict`."""
        return cls(np.asarray(data["points"], dtype=np.float32).reshape(-1, 2), data["score"])
