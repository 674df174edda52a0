"""Draw docs/images/ego_lane.png: the clrkdnet_msgs/EgoLane quantities on a top view of the ground frame.

    .venv/bin/python docs/figures/ego_lane.py [--out docs/images/ego_lane.png]

The ground frame is REP-103 (x forward, up the page; y left, to the left of the page; counter-clockwise
positive); the lateral axis is stretched (LATERAL_STRETCH) so that the lane is legible. The two ego boundaries
are cubics y = c0 + c1 x + c2 x^2 + c3 x^3 with made-up coefficients (a lane bending left, the vehicle right
of the lane centre, the lane turned a little left of the vehicle's x axis); every value printed in the picture
is computed from them as clrkdnet_core.tracking.ego_lane computes EgoLane's fields.
"""

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from clrkdnet_core.lane_curve import GroundCurve

REPO = Path(__file__).resolve().parents[2]
LEFT = GroundCurve(np.array([1.45, 0.07, 0.0012, 0.0]), 2.0, 30.0)  # EGO_LEFT boundary
RIGHT = GroundCurve(np.array([-2.05, 0.07, 0.0012, 0.0]), 2.0, 30.0)  # EGO_RIGHT boundary
X_RANGE = (-4.5, 31.0)
Y_RANGE = (6.0, -7.5)  # left of the page is +y
# The lateral axis is drawn this many times the scale of the forward one (a lane is narrow and long); the
# heading's arc is therefore drawn wider than the true angle, which its label gives.
LATERAL_STRETCH = 2.5

BLUE, RED, GREEN, GREY, BLACK = "#1f77b4", "#d62728", "#2ca02c", "#9a9a9a", "#222222"


def draw(out: Path) -> None:
    center = GroundCurve((LEFT.coefficients + RIGHT.coefficients) / 2.0, LEFT.x_min, LEFT.x_max)
    offset = float(center.y_at(0.0))
    heading = float(center.heading_at(0.0))
    curvature = float(center.curvature_at(0.0))
    width = float(LEFT.y_at(0.0) - RIGHT.y_at(0.0))
    left_distance, right_distance = float(LEFT.y_at(0.0)), -float(RIGHT.y_at(0.0))

    fig, ax = plt.subplots(figsize=(9.0, 9.6))
    ax.set_aspect(1.0 / LATERAL_STRETCH)
    ax.set_xlim(*Y_RANGE)
    ax.set_ylim(*X_RANGE)
    xs = np.linspace(LEFT.x_min, LEFT.x_max, 100)
    near = np.linspace(X_RANGE[0] + 0.5, LEFT.x_min, 20)  # the cubics continued behind their valid range

    # The vehicle (its origin is the ground frame's) behind everything.
    ax.add_patch(plt.Rectangle((0.95, -3.8), -1.9, 4.8, fc="#f0f0f0", ec=GREY, lw=0.8, zorder=0))
    ax.text(0.0, -3.7, "vehicle", ha="center", va="bottom", fontsize=8, color=GREY)

    # Boundaries and the centre line.
    for curve, colour, label in (
        (LEFT, BLUE, "EGO_LEFT boundary: track left_id"),
        (RIGHT, RED, "EGO_RIGHT boundary: track right_id"),
    ):
        ax.plot(curve.y_at(xs), xs, color=colour, lw=2.5, label=label)
        ax.plot(curve.y_at(near), near, color=colour, lw=1.2, ls=":")
    ax.plot(center.y_at(xs), xs, color=GREEN, lw=1.8, ls="--", label="centre line: mean of the two cubics")
    ax.plot(center.y_at(near), near, color=GREEN, lw=1.0, ls=":")
    ax.plot([], [], color=GREY, lw=1.2, ls=":", label="a cubic continued outside [x_min, x_max]")
    ax.text(
        float(LEFT.y_at(24.0)) + 0.25,
        24.0,
        "y = c0 + c1 x + c2 x\u00b2 + c3 x\u00b3\nover [x_min, x_max]",
        ha="right",
        va="center",
        fontsize=8.5,
        color=BLUE,
    )

    # The ground frame's origin.
    ax.plot([0.0], [0.0], "o", color=BLACK, ms=6, zorder=5)
    ax.annotate(
        "origin of ground_frame_id\n(on the road, e.g. base_footprint; z up)",
        xy=(0.0, 0.0),
        xytext=(-2.6, 3.6),
        fontsize=8.5,
        ha="left",
        va="bottom",
        arrowprops=dict(arrowstyle="->", color=BLACK, lw=0.8),
    )
    ax.axhline(0.0, color=GREY, lw=0.6, ls="-.", zorder=0)
    ax.text(
        Y_RANGE[1] + 0.1,
        0.25,
        "x = 0: every EgoLane value is read here",
        fontsize=8,
        color=GREY,
        ha="right",
        va="bottom",
    )

    def dimension(y0: float, y1: float, x: float, colour: str) -> None:
        ax.annotate(
            "",
            xy=(y1, x),
            xytext=(y0, x),
            arrowprops=dict(arrowstyle="<|-|>", color=colour, lw=1.3, shrinkA=0, shrinkB=0),
        )

    # Distances to each boundary (from the origin), the lateral offset and the width.
    dimension(0.0, left_distance, 0.0, BLUE)
    ax.text(
        left_distance / 2.0,
        0.5,
        f"left_distance\n{left_distance:.2f} m",
        ha="center",
        va="bottom",
        fontsize=8.5,
        color=BLUE,
    )
    dimension(0.0, -right_distance, 0.0, RED)
    ax.text(
        -right_distance / 2.0,
        0.5,
        f"right_distance\n{right_distance:.2f} m",
        ha="center",
        va="bottom",
        fontsize=8.5,
        color=RED,
    )
    ax.plot([offset, offset], [0.0, -1.6], color=GREEN, lw=0.8)
    dimension(0.0, offset, -1.6, GREEN)
    ax.text(
        -2.35,
        -1.6,
        f"lateral_offset = {offset:+.2f} m\n(the centre is right of the origin: < 0)",
        ha="left",
        va="center",
        fontsize=8.5,
        color=GREEN,
    )
    for y in (float(LEFT.y_at(0.0)), float(RIGHT.y_at(0.0))):
        ax.plot([y, y], [0.0, -3.0], color=GREY, lw=0.8)
    dimension(float(RIGHT.y_at(0.0)), float(LEFT.y_at(0.0)), -3.0, BLACK)
    ax.text(-2.35, -3.0, f"width = {width:.2f} m", ha="left", va="center", fontsize=8.5)

    # Heading: the centre line's tangent at x = 0 against the x axis.
    top = 17.0
    ax.plot([offset, offset], [0.0, top], color=GREY, lw=1.0, ls="--")
    ax.text(offset - 0.1, top, "x direction", fontsize=8, color=GREY, ha="left", va="bottom")
    ax.plot([offset, offset + top * math.tan(heading)], [0.0, top], color=GREEN, lw=1.2)
    ax.text(
        offset + top * math.tan(heading) + 0.1,
        top,
        "tangent at x = 0",
        fontsize=8,
        color=GREEN,
        ha="right",
        va="bottom",
    )
    radius = 12.0
    angles = np.linspace(0.0, heading, 30)
    ax.plot(offset + radius * np.sin(angles), radius * np.cos(angles), color=GREEN, lw=1.4)
    ax.text(
        offset - 0.4,
        radius + 0.3,
        f"heading = atan(dy/dx) at x = 0\n= {math.degrees(heading):+.2f}\u00b0 (counter-clockwise > 0;\n"
        "here the lane turns left of the vehicle's x axis)",
        ha="left",
        va="bottom",
        fontsize=8.5,
        color=GREEN,
    )

    # Curvature sign.
    ax.annotate(
        f"curvature = 2 c2 / (1 + c1\u00b2)^1.5 = {curvature:+.4f} 1/m\n"
        "at x = 0 of the centre line: > 0 bends left\n(curvature_rate: its derivative along x)",
        xy=(float(center.y_at(22.0)), 22.0),
        xytext=(-1.2, 20.5),
        fontsize=8.5,
        color=GREEN,
        ha="left",
        va="center",
        arrowprops=dict(arrowstyle="->", color=GREEN),
    )

    ax.set_xlabel("y (m), positive to the left")
    ax.set_ylabel("x (m), positive forward")
    ax.set_title(
        f"EgoLane in the ground frame: top view, REP-103 (lateral scale x{LATERAL_STRETCH:g})", fontsize=11
    )
    ax.legend(loc="upper right", fontsize=8, framealpha=0.95)
    ax.grid(True, lw=0.3, alpha=0.5)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "ego_lane.png")
    draw(parser.parse_args().out)


if __name__ == "__main__":
    main()
