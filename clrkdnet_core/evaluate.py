"""``python -m clrkdnet_core.evaluate``: official CULane and TuSimple metrics of prediction files or a model.

    culane    --anno-dir A --pred-dir P [--list L] [--iou 0.5 0.75] [--mf1] [--width 30] [--json]
    tusimple  --pred P.json --gt G.json [--json]
    model     --preset P --weights W --dataset culane|tusimple --root DIR [--split test] [--out DIR]

``--list`` is a list file or a folder of the 9 category lists (CULane's ``list/test_split``); without it,
``A/list/test_split`` is used, else ``A/list/test.txt``; ``list/test.txt`` also gets the table of its
categories when ``list/test_split`` is there. With ``--json`` the last printed line is one JSON object: tp,
fp, fn, precision, recall, f1 at the first IoU threshold (TuSimple: accuracy, fp, fn, f1), plus the other
thresholds and lists, spelt as every JSON result of the project (:mod:`clrkdnet_core.metrics.results`).
``model`` scores the detections in memory, exactly as the official tools score the prediction files it
writes with ``--out`` (:mod:`clrkdnet_core.metrics.scorer`).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from clrkdnet_core.backend_options import add_backend_arguments, detector_options
from clrkdnet_core.cli import run_cli
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.metrics.culane import (
    CULANE_WIDTH,
    MF1_THRESHOLDS,
    category_list_files,
    evaluate_culane_lists,
    mean_f1,
    read_list_file,
    sum_results,
)
from clrkdnet_core.metrics.results import culane_summary, dumps, f1_key
from clrkdnet_core.metrics.tusimple import MAX_RUN_TIME_MS, evaluate_tusimple


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clrkdnet_core.evaluate", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    culane = commands.add_parser("culane", help="CULane F1 (official C++ tool equivalent)")
    culane.add_argument("--anno-dir", required=True, type=Path, help="CULane root holding the GT .lines.txt")
    culane.add_argument("--pred-dir", required=True, type=Path, help="folder of predicted .lines.txt files")
    culane.add_argument("--list", type=Path, help="list file, or folder of category lists (list/test_split)")
    culane.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    _add_culane_options(culane)
    culane.set_defaults(run=_run_culane)

    tusimple = commands.add_parser("tusimple", help="TuSimple accuracy/FP/FN (official lane.py equivalent)")
    tusimple.add_argument("--pred", required=True, type=Path, help="prediction JSON-lines file")
    tusimple.add_argument("--gt", required=True, type=Path, help="GT JSON-lines file (e.g. test_label.json)")
    tusimple.add_argument("--json", action="store_true", help="print the result as one JSON line at the end")
    tusimple.set_defaults(run=_run_tusimple)

    model = commands.add_parser(
        "model", help="run a model over a dataset and score it with the official metric"
    )
    model.add_argument("--preset", required=True, help="preset name or YAML file")
    model.add_argument(
        "--weights", required=True, type=Path, help="checkpoint (.pth), or an official file name"
    )
    model.add_argument("--dataset", required=True, choices=("culane", "tusimple"))
    model.add_argument("--root", required=True, type=Path, help="dataset root")
    model.add_argument("--split", default="test", help="dataset split (default: test)")
    model.add_argument("--out", type=Path, help="also write the official prediction files there")
    model.add_argument("--batch-size", type=int, default=8)
    model.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    add_backend_arguments(model)
    model.add_argument(
        "--run-time-ms", type=float, help="TuSimple: run_time to write instead of the measured ms per image"
    )
    # Accepted as before the scoring moved into memory, where it needs no worker processes.
    model.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    _add_culane_options(model)
    model.set_defaults(run=_run_model)
    return parser


def _add_culane_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iou", type=float, nargs="+", default=[0.5], help="IoU thresholds (first: primary)")
    parser.add_argument("--mf1", action="store_true", help="also IoU 0.50:0.05:0.95 and their mean F1")
    parser.add_argument("--width", type=int, default=CULANE_WIDTH, help="lane width in pixels (default: 30)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line at the end")


def _run_culane(args: argparse.Namespace) -> int:
    results, total_name = _evaluate_culane_dir(args.anno_dir, args.pred_dir, args.list, args)
    _report_culane(results, total_name, args)
    return 0


def _evaluate_culane_dir(
    anno_dir: Path, pred_dir: Path, list_path: Path | None, args: argparse.Namespace
) -> tuple[dict[str, dict], str]:
    """Evaluate the list(s) chosen by ``list_path``; returns {row name: result} and the primary row's name."""
    if not anno_dir.is_dir():
        raise DatasetError(f"CULane annotation directory not found: {anno_dir}")
    if list_path is None:
        split_dir, test_list = anno_dir / "list" / "test_split", anno_dir / "list" / "test.txt"
        if split_dir.is_dir():
            list_path = split_dir
        elif test_list.is_file():
            list_path = test_list
        else:
            raise DatasetError(f"no --list given and neither {split_dir} nor {test_list} exists")
    lists, categories = _culane_lists(list_path)
    results = evaluate_culane_lists(
        anno_dir, pred_dir, {**lists, **categories}, _thresholds(args), args.width, args.workers
    )
    return _with_total(results, categories), next(iter(lists), "total")


def _culane_lists(list_path: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """({name: list file} of the list itself, {category: list file}) to evaluate for ``list_path``.

    A folder is a folder of category lists; CULane's list/test.txt also gets the table of its categories, from
    list/test_split.
    """
    if list_path.is_dir():
        return {}, category_list_files(list_path)
    if not list_path.is_file():
        raise DatasetError(f"CULane list file not found: {list_path}")
    split_dir = list_path.parent / "test_split"
    with_categories = list_path.name == "test.txt" and split_dir.is_dir()
    return {list_path.stem: list_path}, category_list_files(split_dir) if with_categories else {}


def _with_total(results: dict[str, dict], categories: dict) -> dict[str, dict]:
    """``results`` plus the total of the categories from their summed counts, as the official calTotal.m."""
    if categories:
        results["total"] = sum_results(results[name] for name in categories)
    return results


def _thresholds(args: argparse.Namespace) -> list[float]:
    return list(dict.fromkeys([*args.iou, *(MF1_THRESHOLDS if args.mf1 else ())]))


def _report_culane(results: dict[str, dict], total_name: str, args: argparse.Namespace) -> None:
    total = results[total_name]
    thresholds = list(total["thresholds"])
    primary = thresholds[0]
    print(f"CULane (official C++ tool equivalent): width {args.width}, IoU > {primary:g}")
    print(f"{'list':<10}{'images':>8}{'tp':>9}{'fp':>9}{'fn':>9}{'precision':>11}{'recall':>10}{'F1':>10}")
    for name, result in results.items():
        row = result["thresholds"][primary]
        note = f"   <- cross: papers report its FP ({row['fp']})" if name == "cross" else ""
        print(
            f"{name:<10}{result['images']:>8}{row['tp']:>9}{row['fp']:>9}{row['fn']:>9}"
            f"{_cpp_double(row['precision']):>11}{_cpp_double(row['recall']):>10}{_cpp_double(row['f1']):>10}{note}"
        )
    if len(thresholds) > 1:
        columns = list(dict.fromkeys([*args.iou, *((0.5, 0.75) if args.mf1 else ())]))
        header = "".join(f"{f1_key(t).upper():>9}" for t in columns) + (f"{'mF1':>9}" if args.mf1 else "")
        print(f"{'list':<10}{header}")
        for name, result in results.items():
            cells = "".join(f"{_cpp_double(result['thresholds'][t]['f1']):>9}" for t in columns)
            if args.mf1:
                cells += f"{_cpp_double(mean_f1(result)):>9}"
            print(f"{name:<10}{cells}")
    _warn_missing(total)
    if args.json:
        summary = culane_summary(total)
        if len(results) > 1:
            summary["lists"] = {name: culane_summary(result) for name, result in results.items()}
        print(dumps(summary))


def _warn_missing(result: dict) -> None:
    if result["missing_annotations"]:
        print(
            f"warning: {result['missing_annotations']} of {result['images']} annotation files are missing; "
            "they count as images without lanes, as in the official tool",
            file=sys.stderr,
        )
    if result["missing_predictions"]:
        print(
            f"note: {result['missing_predictions']} of {result['images']} prediction files are missing "
            "(no detections there)",
            file=sys.stderr,
        )


def _run_tusimple(args: argparse.Namespace) -> int:
    _report_tusimple(evaluate_tusimple(args.pred, args.gt), args.json)
    return 0


def _report_tusimple(result: dict, as_json: bool) -> None:
    print(f"TuSimple (official lane.py equivalent): {result['images']} images")
    for label, key in (("Accuracy", "accuracy"), ("FP", "fp"), ("FN", "fn"), ("F1", "f1")):
        print(f"{label:<10}{result[key]:.6f}")
    if as_json:
        print(dumps(result))


def _run_model(args: argparse.Namespace) -> int:
    # Heavy imports (torch, the network) only for this subcommand.
    from clrkdnet_core.inference import LaneDetector

    detector = LaneDetector.from_preset(
        args.preset, args.weights, device=args.device, **detector_options(args)
    )
    print(f"backend: {detector.choice.reason}")
    if args.out is not None:
        print(f"predictions: {args.out}")
    if args.dataset == "culane":
        results, primary = _score_culane_model(detector, args)
        _report_culane(results, primary, args)
    else:
        _report_tusimple(_score_tusimple_model(detector, args), args.json)
    return 0


def _score_culane_model(detector, args: argparse.Namespace) -> tuple[dict[str, dict], str]:
    """Score ``detector`` on the CULane split in memory (and write its prediction files to ``--out``)."""
    from clrkdnet_core.data.base import read_image
    from clrkdnet_core.data.culane import LIST_FILES, read_list
    from clrkdnet_core.data.writers import culane_prediction_path, write_culane_prediction
    from clrkdnet_core.metrics.culane import lane_file_path, read_lane_file
    from clrkdnet_core.metrics.scorer import CULaneScorer

    if args.split not in LIST_FILES:
        raise DatasetError(f"unknown CULane split {args.split!r}; expected one of {', '.join(LIST_FILES)}")
    lists, categories = _culane_lists(args.root / LIST_FILES[args.split])
    samples = read_list(args.root, LIST_FILES[args.split])
    scorer = CULaneScorer(args.width)
    for batch in _batches(samples, args.batch_size, "inference"):
        images = [read_image(sample.image) for sample in batch]
        for sample, image, lanes in zip(batch, images, detector.detect_batch(images), strict=True):
            height, width = image.shape[:2]
            gt_lanes = read_lane_file(lane_file_path(args.root, sample.name))
            scorer.add(sample.name, lanes, gt_lanes, (width, height))
            if args.out is not None:
                write_culane_prediction(culane_prediction_path(args.out, sample.name), lanes, width, height)
    names = {next(iter(lists)): [sample.name for sample in samples]}
    names.update({category: _list_names(path) for category, path in categories.items()})
    thresholds = _thresholds(args)
    results = {name: scorer.result(entries, thresholds) for name, entries in names.items()}
    return _with_total(results, categories), next(iter(lists))


def _list_names(list_file: Path) -> list[str]:
    """The image names of a CULane list file, as the datasets name them (no leading '/'; no blank lines)."""
    return [entry.split()[0].lstrip("/") for entry in read_list_file(list_file) if entry.strip()]


def _score_tusimple_model(detector, args: argparse.Namespace) -> dict:
    """Score ``detector`` on the TuSimple split in memory (and write the official JSON files to ``--out``)."""
    from clrkdnet_core.data.base import read_image
    from clrkdnet_core.data.formats import TUSIMPLE_SPLIT_FILES
    from clrkdnet_core.data.tusimple_seg import read_label_file
    from clrkdnet_core.data.writers import tusimple_prediction_line, write_tusimple_predictions
    from clrkdnet_core.metrics.scorer import TuSimpleScorer

    split, root = args.split, args.root
    if split not in TUSIMPLE_SPLIT_FILES:
        expected = ", ".join(TUSIMPLE_SPLIT_FILES)
        raise DatasetError(f"unknown TuSimple split {split!r}; expected one of {expected}")
    label_files = [root / name for name in TUSIMPLE_SPLIT_FILES[split] if (root / name).is_file()]
    if not label_files:
        expected = ", ".join(TUSIMPLE_SPLIT_FILES[split])
        raise DatasetError(f"no TuSimple label file of split {split!r} in {root} (expected {expected})")
    records = [record for path in label_files for record in read_label_file(path)]
    scorer, lines, slow = TuSimpleScorer(), [], 0
    for batch in _batches(records, args.batch_size, "inference"):
        images = [read_image(root / record["raw_file"]) for record in batch]
        start = time.perf_counter()
        detections = detector.detect_batch(images)
        per_image_ms = (time.perf_counter() - start) * 1000 / len(batch)
        run_time = per_image_ms if args.run_time_ms is None else args.run_time_ms
        slow += len(batch) if run_time > MAX_RUN_TIME_MS else 0
        for record, image, lanes in zip(batch, images, detections, strict=True):
            height, width = image.shape[:2]
            raw_file, gt_lanes, h_samples = record["raw_file"], record["lanes"], record["h_samples"]
            scorer.add(raw_file, lanes, gt_lanes, h_samples, (width, height), run_time)
            lines.append(tusimple_prediction_line(raw_file, lanes, run_time, width, height))
    if slow:
        print(
            f"warning: {slow} images took over {MAX_RUN_TIME_MS} ms, which the official tool scores as "
            "misses; --run-time-ms 1 writes a fixed run time instead",
            file=sys.stderr,
        )
    if args.out is not None:
        write_tusimple_predictions(args.out / f"tusimple_{split}_predictions.json", lines)
        if len(label_files) > 1:  # the official tool takes one GT file
            gt_json = args.out / f"tusimple_{split}_gt.json"
            gt_json.write_text("".join(json.dumps(record) + "\n" for record in records))
    return scorer.result()


def _batches(items: list, size: int, desc: str):
    if size < 1:
        raise DatasetError(f"--batch-size must be positive, got {size}")
    for start in tqdm(range(0, len(items), size), desc=desc, unit="batch", disable=None):
        yield items[start : start + size]


def _cpp_double(value: float) -> str:
    """A double as ``std::cout <<`` prints it (6 significant digits; 0/0 from the C++ prints as -nan)."""
    if math.isnan(value):
        return "-nan"
    return f"{value:g}"


if __name__ == "__main__":
    sys.exit(run_cli(main))
