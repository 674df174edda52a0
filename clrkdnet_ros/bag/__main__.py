"""``python -m clrkdnet_ros.bag make|eval|replay``: datasets as bags, offline and live evaluation.

python -m clrkdnet_ros.bag make --from culane ROOT [--list L] --out BAG [--storage mcap|sqlite3]
                                [--rate 30] [--compressed]
python -m clrkdnet_ros.bag eval BAG --preset P --weights W [--device auto] [--backend auto] [--precision auto]
                                [--topic T] [--out DIR] [--no-tracking]
python -m clrkdnet_ros.bag replay BAG --preset P --weights W [--rate 1] [--node-args "..."] [--no-tracking]
                                  [--external] [--out DIR]

Both report the tracking (track ids against the GT's true lane ids, the ego lane against the truth) when the
bag has the truth, as a synthetic drive's bag does.
"""

import argparse
import math
import sys
from pathlib import Path

from clrkdnet_core.backend_options import add_backend_arguments, detector_options
from clrkdnet_core.cli import run_cli
from clrkdnet_core.errors import ClrkdnetError
from clrkdnet_core.hashing import file_sha256
from clrkdnet_core.weights import resolve_weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clrkdnet_ros.bag", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser("make", help="write a dataset (CULane, TuSimple or synthetic) as a bag")
    make.add_argument("--from", dest="kind", required=True, choices=("culane", "tusimple", "synthetic"))
    make.add_argument("root", type=Path, help="dataset root folder")
    make.add_argument(
        "--list", type=Path, help="CULane list file or TuSimple label file (default: the test set)"
    )
    make.add_argument("--out", type=Path, required=True, help="bag folder to create")
    make.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    make.add_argument("--rate", type=float, default=30.0, help="frames per second of the recording")
    make.add_argument("--compressed", action="store_true", help="jpeg CompressedImage instead of raw bgr8")

    evaluate = commands.add_parser("eval", help="run a model over a bag offline and write a report folder")
    evaluate.add_argument("bag", type=Path)
    evaluate.add_argument("--preset", required=True)
    evaluate.add_argument("--weights", type=Path, required=True, help="checkpoint, or an official file name")
    evaluate.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    add_backend_arguments(evaluate)
    evaluate.add_argument("--topic", help="image topic (default: the bag's only Image/CompressedImage topic)")
    evaluate.add_argument("--out", type=Path, help="report folder (default: <bag>_report next to the bag)")
    evaluate.add_argument("--no-video", action="store_true", help="skip the overlay video")
    evaluate.add_argument(
        "--no-tracking", action="store_true", help="perceive each frame alone (the node's tracking:=false)"
    )

    replay = commands.add_parser(
        "replay", help="play a bag live into the lane_detector node and score its lanes"
    )
    replay.add_argument("bag", type=Path)
    replay.add_argument("--preset", help="model preset of the node (not with --external)")
    replay.add_argument(
        "--weights", type=Path, help="the node's checkpoint, or an official file name (not with --external)"
    )
    replay.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    replay.add_argument("--node-args", default="", help='more node arguments, e.g. "-p score_threshold:=0.3"')
    replay.add_argument(
        "--external", action="store_true", help="a lane_detector node already runs; do not start one"
    )
    replay.add_argument("--rate", type=float, default=1.0, help="playback speed factor (1: as recorded)")
    replay.add_argument("--lanes-topic", default="/lanes", help="where the node publishes its LaneArray")
    replay.add_argument("--ego-topic", default="/ego_lane", help="where the node publishes its EgoLane")
    replay.add_argument(
        "--no-tracking", action="store_true", help="start the node with tracking:=false (not with --external)"
    )
    replay.add_argument("--topic", help="image topic (default: the bag's only Image/CompressedImage topic)")
    replay.add_argument("--out", type=Path, help="report folder (default: <bag>_replay next to the bag)")
    replay.add_argument("--no-video", action="store_true", help="skip the overlay video")
    return parser


def _make(args: argparse.Namespace) -> int:
    from clrkdnet_ros.bag.sources import read_source
    from clrkdnet_ros.bag.writer import write_bag

    source = read_source(args.kind, args.root, args.list)
    count = write_bag(source, args.out, storage=args.storage, rate=args.rate, compressed=args.compressed)
    print(f"wrote {count} frames ({source.format}) to {args.out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from clrkdnet_ros.bag.bagfile import LaneBag
    from clrkdnet_ros.bag.evaluate import bag_camera, evaluate_bag
    from clrkdnet_ros.bag.report import OverlayVideo, write_report

    out_dir = args.out or args.bag.parent / f"{args.bag.name}_report"
    # The bag is checked before torch and the model are loaded: a bad bag fails at once.
    with LaneBag(args.bag, args.topic) as bag:
        from clrkdnet_core.inference import LaneDetector

        args.weights = resolve_weights(args.weights)
        detector = LaneDetector.from_preset(
            args.preset, args.weights, device=args.device, **detector_options(args)
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        video = None if args.no_video else OverlayVideo(out_dir / "overlay.mp4", bag_camera(bag).projector)
        try:
            summary, rows = evaluate_bag(bag, detector, on_frame=video, tracking=not args.no_tracking)
        finally:
            if video is not None:
                video.close()
    summary["model"] = {
        "preset": args.preset,
        "weights": str(args.weights),
        "weights_sha256": file_sha256(args.weights),
        "backend": str(detector.backend),
        "precision": str(detector.precision),
        "device": str(detector.device),
    }
    report = write_report(out_dir, summary, rows)
    print(format_summary(report))
    print(f"report: {out_dir / 'report.json'}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from clrkdnet_ros.bag.bagfile import LaneBag
    from clrkdnet_ros.bag.evaluate import bag_camera
    from clrkdnet_ros.bag.replay import node_command, replay_bag
    from clrkdnet_ros.bag.report import OverlayVideo, write_report

    if not args.external and (args.preset is None or args.weights is None):
        raise ClrkdnetError("replay starts the node with --preset and --weights (or use --external)")
    if args.external and args.no_tracking:
        raise ClrkdnetError("--no-tracking sets a parameter of the node replay starts; not with --external")
    if not args.external:
        args.weights = resolve_weights(args.weights)
    out_dir = args.out or args.bag.parent / f"{args.bag.name}_replay"
    with LaneBag(args.bag, args.topic) as bag:
        camera = bag_camera(bag)
        command = tracking = None
        if not args.external:
            node_args = args.node_args + (" -p tracking:=false" if args.no_tracking else "")
            command = node_command(
                args.preset,
                args.weights,
                args.device,
                bag.image_topic,
                bag.camera_info_topic,
                node_args,
                camera,
            )
            tracking = not args.no_tracking
        out_dir.mkdir(parents=True, exist_ok=True)
        video = None if args.no_video else OverlayVideo(out_dir / "overlay.mp4", camera.projector)
        try:
            summary, rows = replay_bag(
                bag,
                out_dir,
                command,
                args.lanes_topic,
                args.rate,
                on_frame=video,
                ego_topic=args.ego_topic,
                camera=camera,
                tracking=tracking,
            )
        finally:
            if video is not None:
                video.close()
    if not args.external:
        summary["model"] = {
            "preset": args.preset,
            "weights": str(args.weights),
            "weights_sha256": file_sha256(args.weights),
            "device": args.device,
            "node_args": args.node_args,
        }
    report = write_report(out_dir, summary, rows)
    print(format_summary(report))
    print(f"report: {out_dir / 'report.json'}")
    return 0


def format_summary(report: dict) -> str:
    """One line: frames, the main metric (or why it was skipped) and the latency."""
    latency = report["latency_ms"]
    if report.get("mode") == "live":
        parts = [f"{report['frames_played']} frames played, {report['frames']} processed"]
        parts.append(f"{report['frames_dropped']} dropped ({100 * (report['dropped_fraction'] or 0):.0f}%)")
    else:
        parts = [f"{report['frames']} frames"]
    metrics = report["metrics"]
    if metrics is None:
        parts.append(f"metrics skipped: {report['metrics_skipped']}")
    elif report["metric"] == "tusimple":
        parts.append(f"TuSimple accuracy {metrics['accuracy']:.4f} F1 {_number(metrics['f1'])}")
    else:
        parts.append(f"CULane F1@50 {_number(metrics['f1@50'])} F1@75 {_number(metrics['f1@75'])}")
    if report["frames"]:
        parts.append(
            f"latency p50 {latency['p50']:.1f} ms p95 {latency['p95']:.1f} ms ({report['fps']:.1f} FPS)"
        )
    tracking = _tracking_summary(report.get("tracking"))
    if tracking:
        parts.append(tracking)
    return ", ".join(parts)


def _tracking_summary(block: dict | None) -> str:
    """The tracking block in a few words: ID switches per 1000 GT matches, ego offset RMSE and jitter."""
    if not block:
        return ""
    parts = []
    identity = block["identity"]
    if identity is not None:
        parts.append(
            f"ID switches {identity['id_switches']} "
            f"({_number(identity['id_switches_per_1000_matches'], 2)}/1000 GT matches)"
        )
    ego = block["ego"]
    if ego is not None:
        # With tracking off the one estimate is under "untracked".
        estimate, untracked = ego.get("tracked"), ego["untracked"]
        if estimate is None:
            estimate, untracked = untracked, None
        if block["ego_truth"]:
            text = (
                f"ego offset RMSE {_number(estimate['lateral_offset_rmse_m'], 3)} m, "
                f"jitter {_number(estimate['lateral_offset_jitter_m'], 3)} m"
            )
            if untracked is not None:
                text += f" (untracked {_number(untracked['lateral_offset_jitter_m'], 3)} m)"
        else:
            text = f"ego lane in {estimate['frames_valid']} frames"
        parts.append(text)
    state = {True: "on", False: "off", None: "unknown"}[block["enabled"]]
    return f"tracking {state}: " + ", ".join(parts) if parts else f"tracking {state}"


def _number(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return {"make": _make, "eval": _eval, "replay": _replay}[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m clrkdnet_ros.bag`` and of the ``lane_bag`` executable."""
    return run_cli(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
