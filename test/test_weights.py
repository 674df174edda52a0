"""Official weights by name: the presets' metadata, the weights cache lookup, the listing and the download.

Downloads are served by a real HTTP server on 127.0.0.1; the CLI runs in a subprocess like a user runs it.
"""

import hashlib
import http.server
import io
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from clrkdnet_core.config import available_presets, load_preset
from clrkdnet_core.errors import CheckpointError
from clrkdnet_core.weights import resolve_weights, weights_cache_dir

CLRNET_PAGE = "https://github.com/Turoad/CLRNet/releases/tag/models"
CLRKDNET_PAGE = "https://github.com/weiqingq/CLRKDNet/releases"
# What the authors' READMEs report (CLRNet: Turoad/CLRNet README; CLRKDNet: weiqingq/CLRKDNet README).
REPORTED = {
    "clrkdnet_resnet18_culane": (CLRKDNET_PAGE, "ResNet18_CULane.pth", "CULane F1@50", 79.66),
    "clrkdnet_dla34_culane": (CLRKDNET_PAGE, "DLA34_CULane.pth", "CULane F1@50", 80.68),
    "clrnet_resnet18_culane": (CLRNET_PAGE, "culane_r18.pth", "CULane F1@50", 79.58),
    "clrnet_resnet34_culane": (CLRNET_PAGE, "culane_r34.pth", "CULane F1@50", 79.73),
    "clrnet_resnet101_culane": (CLRNET_PAGE, "culane_r101.pth", "CULane F1@50", 80.13),
    "clrnet_dla34_culane": (CLRNET_PAGE, "culane_dla34.pth", "CULane F1@50", 80.47),
    "clrnet_resnet18_tusimple": (CLRNET_PAGE, "tusimple_r18.pth", "TuSimple F1", 97.89),
    "clrnet_resnet34_tusimple": (CLRNET_PAGE, "tusimple_r34.pth", "TuSimple F1", 97.82),
    "clrnet_resnet101_tusimple": (CLRNET_PAGE, "tusimple_r101.pth", "TuSimple F1", 97.62),
}
PAYLOAD = b"official checkpoint bytes " * 4096


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty weights cache, in this process and in the CLI subprocesses."""
    monkeypatch.setenv("CLRKDNET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clrkdnet_core.weights", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


# ---- the presets' metadata ---------------------------------------------------------------------------------


def test_every_published_checkpoint_is_named_with_its_reported_metric():
    for name in available_presets():
        weights = load_preset(name).official_weights
        if name not in REPORTED:
            assert weights is None, f"{name}: the authors publish no checkpoint for it"
            continue
        assert (weights.page, weights.file, weights.metric, weights.reported) == REPORTED[name]
        assert weights.sha256 is None  # not published: filled in once known
        if weights.url is not None:
            assert weights.url.startswith(weights.page.replace("/tag/", "/download/") + "/")
            assert Path(weights.url).name in (weights.file, weights.file + ".zip")


def test_official_weights_round_trip_through_a_saved_preset(tmp_path):
    from clrkdnet_core.config import save_preset

    preset = load_preset("clrnet_resnet18_culane")
    assert load_preset(save_preset(preset, tmp_path / "copy.yaml")) == preset


def test_malformed_official_weights_are_refused(tmp_path):
    from clrkdnet_core.errors import PresetError

    data = yaml.safe_load(Path(load_preset("clrnet_resnet18_culane").source).read_text())
    for key, value, message in (("sha256", "abc", "64 lowercase hex"), ("file", "a/b.pth", "bare file name")):
        broken = {**data, "official_weights": {**data["official_weights"], key: value}}
        path = tmp_path / "broken.yaml"
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(PresetError, match=message):
            load_preset(path)


# ---- lookup ------------------------------------------------------------------------------------------------


def test_cache_dir_follows_the_environment(cache):
    assert weights_cache_dir() == cache


def test_cache_dir_default(monkeypatch):
    monkeypatch.delenv("CLRKDNET_CACHE_DIR", raising=False)
    assert weights_cache_dir() == Path.home() / ".cache" / "clrkdnet_ros" / "weights"


def test_a_path_is_used_as_it_is(cache, tmp_path):
    path = tmp_path / "mine.pth"
    path.write_bytes(b"x")
    assert resolve_weights(path) == path
    assert resolve_weights(str(path)) == path


def test_a_bare_name_is_found_in_the_cache(cache):
    cache.mkdir(parents=True)
    (cache / "culane_r18.pth").write_bytes(b"x")
    assert resolve_weights("culane_r18.pth") == cache / "culane_r18.pth"


def test_a_missing_official_file_names_the_cache_and_the_download_command(cache):
    with pytest.raises(CheckpointError) as error:
        resolve_weights("culane_r18.pth")
    message = str(error.value)
    assert "culane_r18.pth" in message
    assert str(cache) in message
    assert "python -m clrkdnet_core.weights download culane_r18.pth" in message


def test_a_missing_path_is_named(cache, tmp_path):
    for missing in (str(tmp_path / "nope.pth"), "nope.pth"):
        with pytest.raises(CheckpointError, match=f"weights file not found: {missing}$"):
            resolve_weights(missing)


def test_lane_detector_loads_an_official_name_from_the_cache(cache):
    from clrkdnet_core.checkpoint import save_checkpoint
    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_core.models import build_model

    model = build_model("clrkdnet_resnet18_culane")
    save_checkpoint(cache / "ResNet18_CULane.pth", model)
    detector = LaneDetector.from_preset("clrkdnet_resnet18_culane", "ResNet18_CULane.pth", device="cpu")
    assert detector.preset.name == "clrkdnet_resnet18_culane"


def test_predict_cli_names_the_missing_official_file(cache, tmp_path):
    image = tmp_path / "frame.png"
    image.write_bytes(b"")
    command = [sys.executable, "-m", "clrkdnet_core.predict", "--preset", "clrnet_resnet18_culane"]
    command += ["--weights", "culane_r18.pth", str(image), "--out", str(tmp_path / "out")]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: weights file not found: culane_r18.pth") and str(cache) in line


# ---- listing -----------------------------------------------------------------------------------------------


def test_listing_shows_every_preset_with_source_metric_and_presence(cache):
    cache.mkdir(parents=True)
    (cache / "culane_r34.pth").write_bytes(b"x")
    result = _cli()
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:-1]}
    assert set(rows) == set(available_presets())
    for name, (page, file, metric, reported) in REPORTED.items():
        present = "yes" if file == "culane_r34.pth" else "no"
        assert rows[name].split() == [name, file, *metric.split(), str(reported), present, page]
    assert rows["clrkdnet_resnet18_tusimple"].endswith("no official checkpoint")
    assert result.stdout.splitlines()[-1] == f"weights cache: {cache}"


# ---- download from a local HTTP server ---------------------------------------------------------------------


class _Server(http.server.ThreadingHTTPServer):
    files: dict[str, bytes]
    truncate: bool = False


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # A truncated response: the promised length, half the bytes, then the connection closes.
        self.wfile.write(body[: len(body) // 2] if self.server.truncate else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    server = _Server(("127.0.0.1", 0), _Handler)
    server.files = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"release/{name}", data)
    return buffer.getvalue()


def _preset_with(tmp_path: Path, **official) -> Path:
    """A copy of clrnet_resnet18_culane whose official_weights entries are replaced."""
    data = yaml.safe_load(Path(load_preset("clrnet_resnet18_culane").source).read_text())
    data["official_weights"] |= official
    path = tmp_path / "served.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _no_leftovers(cache: Path, *kept: str) -> None:
    assert sorted(p.name for p in cache.iterdir()) == sorted(kept), "a failed download left files behind"


def test_download_unpacks_the_zip_release_asset_into_the_cache(cache, server, tmp_path):
    server.files["/models/culane_r18.pth.zip"] = _zip("culane_r18.pth", PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    preset = _preset_with(tmp_path, url=_url(server, "/models/culane_r18.pth.zip"), sha256=sha)
    result = _cli("download", str(preset))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(cache / "culane_r18.pth")
    assert "culane_r18.pth.zip" in result.stderr  # the tqdm progress bar
    assert (cache / "culane_r18.pth").read_bytes() == PAYLOAD
    _no_leftovers(cache, "culane_r18.pth")
    # Now found by name, and not fetched again.
    assert resolve_weights("culane_r18.pth") == cache / "culane_r18.pth"
    server.files.clear()
    again = _cli("download", str(preset))
    assert again.returncode == 0 and "already there" in again.stdout


def test_download_of_a_plain_file(cache, server, tmp_path):
    server.files["/culane_r18.pth"] = PAYLOAD
    result = _cli("download", "--quiet", str(_preset_with(tmp_path, url=_url(server, "/culane_r18.pth"))))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (cache / "culane_r18.pth").read_bytes() == PAYLOAD


def test_a_wrong_sha256_keeps_nothing(cache, server, tmp_path):
    server.files["/culane_r18.pth"] = PAYLOAD
    preset = _preset_with(tmp_path, url=_url(server, "/culane_r18.pth"), sha256="0" * 64)
    result = _cli("download", "--quiet", str(preset))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "does not have the published sha256" in line and str(cache) in line
    _no_leftovers(cache)


def test_a_truncated_download_keeps_nothing(cache, server, tmp_path):
    server.files["/culane_r18.pth"] = PAYLOAD
    server.truncate = True
    result = _cli("download", "--quiet", str(_preset_with(tmp_path, url=_url(server, "/culane_r18.pth"))))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot download") and CLRNET_PAGE in line
    _no_leftovers(cache)


def test_an_unreachable_source_gives_one_line_naming_the_page_and_the_cache(cache, server, tmp_path):
    for url in (_url(server, "/missing.pth.zip"), "http://127.0.0.1:9/culane_r18.pth.zip"):
        result = _cli("download", str(_preset_with(tmp_path, url=url)))
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: cannot download {url}")
        assert f"get culane_r18.pth from {CLRNET_PAGE} and put it in {cache}" in line


def test_a_checkpoint_without_a_direct_link_says_where_to_get_it(cache):
    result = _cli("download", "ResNet18_CULane.pth")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: ResNet18_CULane.pth has no direct download link: get ResNet18_CULane.pth from "
        f"{CLRKDNET_PAGE} and put it in {cache}"
    )


def test_unknown_names_are_refused(cache):
    for name, message in (
        ("nope.pth", "nope.pth is not an official checkpoint"),
        ("clrkdnet_resnet18_tusimple", "names no official checkpoint"),
        ("nope", "unknown preset 'nope'"),
    ):
        result = _cli("download", name)
        assert result.returncode == 2
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
