"""The authors' checkpoints by name: the weights cache, name lookup, the listing and the download.

Each shipped preset names where its official checkpoint is published (``official_weights`` in its YAML).
Everywhere a checkpoint is asked for (``LaneDetector.from_preset``, the CLIs, the node's ``weights``
parameter) a bare official file name such as ``culane_r18.pth`` is looked up in the weights cache,
``$CLRKDNET_CACHE_DIR/weights`` (default ``~/.cache/clrkdnet_ros/weights``, beside the exported engines)::

    python -m clrkdnet_core.weights            # each preset: file, reported metric, present?, source
    python -m clrkdnet_core.weights download clrnet_resnet18_culane   # or its file name culane_r18.pth

Imports neither torch nor ROS: the node resolves its parameter before loading anything heavy.
"""

import argparse
import http.client
import os
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from clrkdnet_core.cli import run_cli
from clrkdnet_core.config import OfficialWeights, Preset, available_presets, load_preset
from clrkdnet_core.errors import CheckpointError, ClrkdnetError
from clrkdnet_core.hashing import file_sha256

CACHE_ENV = "CLRKDNET_CACHE_DIR"
DOWNLOAD_TIMEOUT_S = 30
_CHUNK = 1 << 20


class DownloadError(ClrkdnetError):
    """An official checkpoint that cannot be fetched (no direct link, no network, a bad file)."""


def weights_cache_dir() -> Path:
    """Folder of downloaded official checkpoints: ``$CLRKDNET_CACHE_DIR/weights`` or
    ``~/.cache/clrkdnet_ros/weights``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "clrkdnet_ros"
    return Path(root) / "weights"


def official_presets() -> list[Preset]:
    """The shipped presets that name an official checkpoint, sorted by name."""
    presets = (load_preset(name) for name in available_presets())
    return [preset for preset in presets if preset.official_weights is not None]


def resolve_weights(weights: str | os.PathLike) -> Path:
    """The checkpoint file ``weights`` means: an existing path, else a bare file name in the weights cache.

    Raises CheckpointError naming the file (and, for an official name, the cache and the download command).
    """
    path = Path(weights)
    if path.is_file():
        return path
    if path.name == str(weights):
        cached = weights_cache_dir() / path.name
        if cached.is_file():
            return cached
        if any(preset.official_weights.file == path.name for preset in official_presets()):
            raise CheckpointError(
                f"weights file not found: {weights} (an official checkpoint, not in the weights cache "
                f"{weights_cache_dir()}: python -m clrkdnet_core.weights download {path.name})"
            )
    raise CheckpointError(f"weights file not found: {weights}")


def find_official(name: str) -> OfficialWeights:
    """The official checkpoint of a preset (name or YAML path) or with this file name."""
    official = [preset.official_weights for preset in official_presets()]
    for weights in official:
        if name == weights.file:
            return weights
    if name.endswith(".pth"):
        known = ", ".join(weights.file for weights in official)
        raise DownloadError(f"{name} is not an official checkpoint; the official files are: {known}")
    weights = load_preset(name).official_weights
    if weights is None:
        raise DownloadError(f"preset {name!r} names no official checkpoint")
    return weights


def download(weights: OfficialWeights, cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Fetch ``weights`` into the cache (unpacking a .zip release asset) and return the file's path.

    Written atomically: a failed or interrupted download leaves no file under the final name. The file is
    checked against ``weights.sha256`` when that is known. Raises DownloadError in one line that names
    the release page and the cache folder, where the file can be put by hand.
    """
    cache_dir = weights_cache_dir() if cache_dir is None else Path(cache_dir)
    target = cache_dir / weights.file
    by_hand = f"get {weights.file} from {weights.page} and put it in {cache_dir}"
    if weights.url is None:
        raise DownloadError(f"{weights.file} has no direct download link: {by_hand}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        fetched = Path(tmp) / Path(weights.url).name
        try:
            _fetch(weights.url, fetched, progress)
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(f"cannot download {weights.url} ({reason}): {by_hand}") from exc
        unpacked = _unpack(fetched, weights.file) if zipfile.is_zipfile(fetched) else fetched
        if weights.sha256 is not None and file_sha256(unpacked) != weights.sha256:
            raise DownloadError(
                f"{weights.url} does not have the published sha256 {weights.sha256}: {by_hand}"
            )
        os.replace(unpacked, target)
    return target


def _fetch(url: str, path: Path, progress: bool) -> None:
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, path.open("wb") as out:
        size = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar:
            received = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # read() returns what arrived before the connection closed: a cut transfer must not pass as the file.
    if size is not None and received != size:
        raise OSError(f"the connection closed after {received} of {size} bytes")


def _unpack(archive: Path, file_name: str) -> Path:
    """The member called ``file_name`` (in any folder of the archive), extracted beside the archive."""
    with zipfile.ZipFile(archive) as zipped:
        members = [m for m in zipped.infolist() if Path(m.filename).name == file_name and not m.is_dir()]
        if not members:
            raise DownloadError(f"{archive.name} does not contain {file_name}")
        out = archive.with_name(file_name)
        with zipped.open(members[0]) as source, out.open("wb") as sink:
            while chunk := source.read(_CHUNK):
                sink.write(chunk)
    return out


def _listing() -> str:
    cache_dir = weights_cache_dir()
    rows = [("preset", "file", "reported", "present", "source")]
    for name in available_presets():
        weights = load_preset(name).official_weights
        if weights is None:
            rows.append((name, "-", "-", "-", "no official checkpoint"))
            continue
        present = "yes" if (cache_dir / weights.file).is_file() else "no"
        rows.append((name, weights.file, f"{weights.metric} {weights.reported}", present, weights.page))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join([*lines, f"weights cache: {cache_dir}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clrkdnet_core.weights", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="every preset with its official checkpoint (the default)")
    fetch = commands.add_parser("download", help="download official checkpoints into the weights cache")
    fetch.add_argument("names", nargs="+", help="preset names or YAML paths, or official file names")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command != "download":
        print(_listing())
        return 0
    for name in args.names:
        weights = find_official(name)
        cached = weights_cache_dir() / weights.file
        if cached.is_file():
            print(f"{cached} (already there)")
            continue
        print(download(weights, progress=not args.quiet))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
