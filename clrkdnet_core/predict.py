"""Detect lanes in images, folders and videos; write overlays and lanes as JSON.

    python -m clrkdnet_core.predict --preset clrkdnet_resnet18_culane --weights culane_r18.pth \\
        frames/ road.mp4 photo.jpg --out predictions/

Per image: ``<out>/<name>`` (overlay) and ``<out>/<stem>.json`` (``{"image", "width", "height", "lanes":
[{"score", "points": [[x, y], ...]}]}``, points in the image's pixels, top to bottom). Images found in a
folder keep their path below ``<out>/<folder name>/``. Per video: ``<out>/<stem>_lanes.mp4`` (overlay) and
``<out>/<stem>.json`` with the lanes of every frame. With ``--track`` a video's lanes are tracked over its
frames: each lane in the JSON also has its track ``id``, ``age``, ``measured``, ``existence`` and
``position``, and the overlay colours each lane by its track and writes the id at its base.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from clrkdnet_core.backend_options import add_backend_arguments, detector_options
from clrkdnet_core.cli import run_cli
from clrkdnet_core.config import load_preset
from clrkdnet_core.errors import InputError
from clrkdnet_core.image import read_image
from clrkdnet_core.lane import Lane
from clrkdnet_core.perception import LanePerception, PerceivedLane
from clrkdnet_core.visualization import PALETTE, draw_lanes

if TYPE_CHECKING:
    from clrkdnet_core.inference import LaneDetector

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg"}
DECIMALS = 2  # pixel coordinates in the JSON files


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m clrkdnet_core.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "inputs", nargs="+", type=Path, help="images, folders (searched recursively) or videos"
    )
    parser.add_argument("--preset", required=True, help="preset name or YAML file")
    parser.add_argument(
        "--weights",
        required=True,
        type=Path,
        help="checkpoint file, or an official file name in the weights cache",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_backend_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=4, help="images per network call (default: 4)")
    parser.add_argument("--conf-threshold", type=float, help="minimum lane score (default: the preset's)")
    parser.add_argument("--nms-thres", type=float, help="lane NMS threshold in px (default: the preset's)")
    parser.add_argument("--max-lanes", type=int, help="lanes per image (default: the preset's)")
    parser.add_argument(
        "--track",
        action="store_true",
        help="videos: track the lanes over the frames (stable ids on the overlay and in the JSON)",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    return args


def collect_inputs(paths: list[Path], out: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(image, overlay path) pairs and video files from the command-line inputs."""
    images: list[tuple[Path, Path]] = []
    videos: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise InputError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in folder {path}")
            folder = path.resolve().name
            images += [(p, out / folder / p.relative_to(path)) for p in found]
        elif not path.exists():
            raise InputError(f"no such input: {path}")
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            images.append((path, out / path.name))
        elif path.suffix.lower() in VIDEO_EXTENSIONS:
            videos.append(path)
        else:
            raise InputError(
                f"unsupported input {path}: expected a folder, an image "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}) or a video ({', '.join(sorted(VIDEO_EXTENSIONS))})"
            )
    targets = [overlay for _, overlay in images] + [out / f"{video.stem}_lanes.mp4" for video in videos]
    if len(set(targets)) != len(targets):
        duplicate = next(target for target in targets if targets.count(target) > 1)
        raise InputError(f"two inputs would both be written to {duplicate}; pass them in separate runs")
    return images, videos


def lanes_json(lanes: list[Lane]) -> list[dict]:
    return [lane.to_dict(DECIMALS) for lane in lanes]


def batches(items: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(items, size)):
        yield batch


def predict_images(detector: "LaneDetector", images: list[tuple[Path, Path]], batch_size: int) -> None:
    with tqdm(total=len(images), desc="images", unit="img") as progress:
        for batch in batches(iter(images), batch_size):
            pixels = [read_image(path) for path, _ in batch]
            for (path, overlay), image, lanes in zip(
                batch, pixels, detector.detect_batch(pixels), strict=True
            ):
                overlay.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(overlay), draw_lanes(image, lanes)):
                    raise InputError(f"cannot write {overlay}")
                record = {"image": str(path), "width": image.shape[1], "height": image.shape[0]}
                record["lanes"] = lanes_json(lanes)
                overlay.with_suffix(".json").write_text(json.dumps(record) + "\n", encoding="utf-8")
            progress.update(len(batch))


def tracked_lanes_json(lanes: list[PerceivedLane]) -> list[dict]:
    return [
        {
            **lane.lane.to_dict(DECIMALS),
            "id": lane.track_id,
            "age": lane.age,
            "measured": lane.measured,
            "existence": round(lane.existence, DECIMALS + 2),
            "position": lane.position,
        }
        for lane in lanes
    ]


def draw_tracks(image: np.ndarray, lanes: list[PerceivedLane]) -> np.ndarray:
    """Tracked lanes, each in its track's colour (so it keeps it from frame to frame), the id at its base;
    lanes predicted through a frame the detector missed are drawn thinner."""
    canvas = image
    font_scale = max(0.5, image.shape[1] / 1400)
    thickness = max(2, round(4 * image.shape[1] / 1640))
    for lane in lanes:
        colour = PALETTE[lane.track_id % len(PALETTE)]
        width = thickness if lane.measured else thickness // 2
        canvas = draw_lanes(canvas, [lane.lane], thickness=width, show_scores=False, color=colour)
        if len(lane.lane) > 0:
            x, y = lane.lane.points[-1]
            x = int(np.clip(x, 0, image.shape[1] - 1))
            y = int(np.clip(y - 8, 12, image.shape[0] - 1))
            cv2.putText(canvas, str(lane.track_id), (x, y), cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, 2)
    return canvas


def predict_video(
    detector: "LaneDetector", video: Path, out: Path, batch_size: int, track: bool = False
) -> None:
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise InputError(f"cannot open video {video} (unsupported or corrupt file)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    out.mkdir(parents=True, exist_ok=True)
    overlay_path = out / f"{video.stem}_lanes.mp4"
    writer = None
    frames: list[dict] = []
    size = {}
    perception = LanePerception() if track else None
    try:
        with tqdm(total=total if total > 0 else None, desc=video.name, unit="frame") as progress:
            for batch in batches(_frames(capture), batch_size):
                for image, lanes in zip(batch, detector.detect_batch(batch), strict=True):
                    if writer is None:
                        size = {"width": image.shape[1], "height": image.shape[0]}
                        writer = _open_writer(overlay_path, fps, size["width"], size["height"])
                    if perception is None:
                        overlay, record = draw_lanes(image, lanes), lanes_json(lanes)
                    else:
                        stamp_s = len(frames) / fps
                        tracked = perception.update(lanes, (size["width"], size["height"]), stamp_s).lanes
                        overlay, record = draw_tracks(image, tracked), tracked_lanes_json(tracked)
                    writer.write(overlay)
                    frames.append({"frame": len(frames), "lanes": record})
                progress.update(len(batch))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not frames:
        raise InputError(f"video {video} has no readable frames")
    record = {"video": str(video), "fps": fps, **size, "frames": frames}
    (out / f"{video.stem}.json").write_text(json.dumps(record) + "\n", encoding="utf-8")


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def _open_writer(path: Path, fps: float, width: int, height: int) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise InputError(f"cannot write video {path} (no MPEG-4 encoder in this OpenCV build?)")
    return writer


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = load_preset(args.preset)
    images, videos = collect_inputs(args.inputs, args.out)
    from clrkdnet_core.inference import LaneDetector  # the networks: only once the arguments look right

    detector = LaneDetector.from_preset(preset, args.weights, device=args.device, **detector_options(args))
    detector.set_thresholds(args.conf_threshold, args.nms_thres, args.max_lanes)
    predict_images(detector, images, args.batch_size)
    for video in videos:
        predict_video(detector, video, args.out, args.batch_size, track=args.track)
    print(f"wrote lanes of {len(images)} image(s) and {len(videos)} video(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
