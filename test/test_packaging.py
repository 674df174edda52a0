"""Packaging: the two package manifests, the ament_python install layout, and the message definitions."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parent.parent
MSG_DIR = REPO / "msg" / "msg"
MSG_FILES = sorted(MSG_DIR.glob("*.msg"))

NODE_EXEC_DEPS = {
    "rclpy",
    "sensor_msgs",
    "std_msgs",
    "geometry_msgs",
    "nav_msgs",
    "tf2_ros_py",
    "visualization_msgs",
    "diagnostic_msgs",
    "std_srvs",
    "lifecycle_msgs",
    "launch",
    "launch_ros",
    "clrkdnet_msgs",
    "python3-numpy",
    "python3-opencv",
}


def names(deps) -> set[str]:
    return {dep.name for dep in deps}


def test_root_package_xml():
    package = parse_package(REPO / "package.xml")
    package.validate()
    assert package.name == "clrkdnet_ros"
    assert package.package_format == 3
    assert package.get_build_type() == "ament_python"
    assert names(package.exec_depends) >= NODE_EXEC_DEPS
    assert "python3-pytest" in names(package.test_depends)
    # Pure Python: nothing compiled, so no build tool or build-time dependency beyond ament_python.
    assert not package.build_depends


def test_interface_package_xml():
    package = parse_package(REPO / "msg" / "package.xml")
    package.validate()
    assert package.name == "clrkdnet_msgs"
    assert package.get_build_type() == "ament_cmake"
    assert [group.name for group in package.member_of_groups] == ["rosidl_interface_packages"]
    assert names(package.buildtool_depends) >= {"ament_cmake", "rosidl_default_generators"}
    assert names(package.build_depends) >= {"std_msgs", "geometry_msgs"}
    assert names(package.exec_depends) >= {"std_msgs", "geometry_msgs", "rosidl_default_runtime"}


def test_cmakelists_generates_every_msg_file():
    cmake = (REPO / "msg" / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"(msg/\w+\.msg)"', cmake))
    assert listed == {f"msg/{path.name}" for path in MSG_FILES}
    assert "DEPENDENCIES std_msgs geometry_msgs" in cmake


def test_setup_cfg_installs_executables_where_ros2_run_looks():
    text = (REPO / "setup.cfg").read_text()
    assert "script_dir=$base/lib/clrkdnet_ros" in text
    assert "install_scripts=$base/lib/clrkdnet_ros" in text


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed the way colcon's ament_python build does it, into a throw-away prefix."""
    tmp = tmp_path_factory.mktemp("install")
    prefix = tmp / "prefix"
    command = [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp)]
    command += ["build", "--build-base", str(tmp / "build")]
    command += ["install", "--prefix", str(prefix), "--record", str(tmp / "record.txt")]
    command += ["--single-version-externally-managed"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return prefix


def test_install_layout(installed):
    share = installed / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "clrkdnet_ros").is_file()
    assert (share / "clrkdnet_ros" / "package.xml").is_file()
    assert (share / "clrkdnet_ros" / "launch" / "lane_detect.launch.py").is_file()
    assert (share / "clrkdnet_ros" / "config" / "lane_detect.yaml").is_file()
    assert (share / "clrkdnet_ros" / "config" / "lane_detect.rviz").is_file()
    assert sorted(p.name for p in (share / "clrkdnet_ros" / "msg").iterdir()) == [p.name for p in MSG_FILES]
    for executable in ("lane_detector", "lane_bag"):
        assert (installed / "lib" / "clrkdnet_ros" / executable).is_file()


def test_install_contains_every_module_and_preset(installed):
    site_packages = next(installed.glob("lib/python*/site-packages"))
    for package in ("clrkdnet_core", "clrkdnet_ros"):
        sources = {p.relative_to(REPO) for p in (REPO / package).rglob("*.py")}
        copied = {p.relative_to(site_packages) for p in (site_packages / package).rglob("*.py")}
        assert sources - copied == set(), "folders without __init__.py are not installed"
    presets = {p.name for p in (REPO / "clrkdnet_core" / "presets").glob("*.yaml")}
    assert presets
    assert {p.name for p in (site_packages / "clrkdnet_core" / "presets").glob("*.yaml")} == presets
    assert (site_packages / "clrkdnet_ros" / "fastdds_large_frames.xml").is_file()  # the node's DDS profile
    assert not (site_packages / "training").exists()
    assert not (site_packages / "test").exists()
    assert not list(installed.rglob("*.so")), "the package must not build compiled extensions"


def test_console_scripts_point_at_main_functions():
    tree = ast.parse((REPO / "setup.py").read_text())
    specs = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"\w+ = [\w.]+:\w+", node.value)
    ]
    assert {spec.split(" = ")[0] for spec in specs} == {"lane_detector", "lane_bag"}
    for spec in specs:
        module, function = spec.split(" = ")[1].split(":")
        path = REPO / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{spec}: {path.relative_to(REPO)} does not exist"
        defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"{path} has no {function}()"


@pytest.fixture(scope="module")
def dev_installed(tmp_path_factory) -> Path:
    """The package installed by set-up's scripts/install_package.py, into a throw-away prefix."""
    prefix = tmp_path_factory.mktemp("dev") / "prefix"
    result = subprocess.run(
        [sys.executable, "scripts/install_package.py", str(prefix)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return prefix


def _package_files(prefix: Path) -> set[Path]:
    """What an ament_python install puts outside site-packages: the index marker, share/ and lib/<package>."""
    roots = [
        prefix / "share" / "ament_index",
        prefix / "share" / "clrkdnet_ros",
        prefix / "lib" / "clrkdnet_ros",
    ]
    return {path.relative_to(prefix) for root in roots for path in root.rglob("*") if not path.is_dir()}


def test_set_up_installs_exactly_the_colcon_layout(installed, dev_installed):
    assert _package_files(dev_installed) == _package_files(installed)


def test_set_up_install_links_to_the_repo(dev_installed):
    """share/ files are symlinks and the executables import the repo's code: edits need no re-install."""
    share = dev_installed / "share" / "clrkdnet_ros"
    for path in share.rglob("*"):
        if not path.is_dir():
            assert path.is_symlink() and path.resolve().is_relative_to(REPO), path
    result = subprocess.run(
        [str(dev_installed / "lib" / "clrkdnet_ros" / "lane_bag"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "replay" in result.stdout
    launcher = (dev_installed / "lib" / "clrkdnet_ros" / "lane_detector").read_text()
    assert launcher.startswith(f"#!{sys.executable}\n")
    assert "from clrkdnet_ros.lane_detector import main" in launcher


def test_a_second_install_leaves_no_stale_file(dev_installed, tmp_path):
    stale = dev_installed / "share" / "clrkdnet_ros" / "launch" / "removed.launch.py"
    stale.symlink_to(tmp_path / "gone")
    subprocess.run([sys.executable, "scripts/install_package.py", str(dev_installed)], cwd=REPO, check=True)
    assert not stale.is_symlink()


def test_set_up_succeeds_without_the_ros2_cli_folder(tmp_path):
    """Where ../shared/ros2_cli is absent the CLI step says why it skips and succeeds."""
    missing = tmp_path / "no_shared" / "ros2_cli"
    # An interpreter without the tools (here they are installed in the venv): the base Python.
    bare_venv = tmp_path / "bare_venv"
    (bare_venv / "bin").mkdir(parents=True)
    (bare_venv / "bin" / "python").symlink_to(Path(sys.base_prefix) / "bin" / "python3")
    result = subprocess.run(
        ["scripts/install_ros2_cli.sh", str(bare_venv), str(missing), str(tmp_path / "build")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"skipping the ROS 2 command line: no wheels in {missing}/wheels" in result.stdout
    assert not (tmp_path / "build").exists()
    # make records the skip under its own stamp, so that set-up installs the tools once the folder exists.
    plan = subprocess.run(
        ["make", "-n", "-B", "setup", f"ROS2_CLI={missing}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plan.returncode == 0, plan.stderr
    assert f"scripts/install_ros2_cli.sh .venv {missing} " in plan.stdout
    assert ".clrkdnet-skipped.stamp" in plan.stdout


def test_set_up_succeeds_without_the_ros2_tf_folder(tmp_path):
    """Where ../shared/ros2_tf is absent the tf2 step says why it skips and succeeds."""
    missing = tmp_path / "no_shared" / "ros2_tf"
    bare_venv = tmp_path / "bare_venv"  # an interpreter without tf2_ros: the base Python
    (bare_venv / "bin").mkdir(parents=True)
    (bare_venv / "bin" / "python").symlink_to(Path(sys.base_prefix) / "bin" / "python3")
    result = subprocess.run(
        ["scripts/install_tf2.sh", str(bare_venv), str(missing), str(tmp_path / "build")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"skipping tf2: no {missing}/build_tf2.sh" in result.stdout
    assert not (tmp_path / "build").exists()
    plan = subprocess.run(
        ["make", "-n", "-B", "setup", f"ROS2_TF={missing}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plan.returncode == 0, plan.stderr
    assert f"scripts/install_tf2.sh .venv {missing} " in plan.stdout
    assert "build/tf2/.clrkdnet-skipped.stamp" in plan.stdout


@pytest.mark.parametrize("path", MSG_FILES, ids=lambda p: p.name)
def test_every_msg_field_is_documented(path):
    """Every field and constant sits in a block of lines that starts right under a comment."""
    documented = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            documented = True
        elif not stripped:
            documented = False
        else:
            assert documented, f"{path.name}:{number}: '{stripped}' has no comment above it"


def test_msg_files_parse_on_their_own():
    """The installed .msg files are what offline bag tools (rosbags) read without a build."""
    from rosbags.typesys import get_types_from_msg

    parsed = {}
    for path in MSG_FILES:
        parsed.update(get_types_from_msg(path.read_text(), f"clrkdnet_msgs/msg/{path.stem}"))
    lane_constants, lane_fields = parsed["clrkdnet_msgs/msg/Lane"]
    _, array_fields = parsed["clrkdnet_msgs/msg/LaneArray"]
    assert [name for name, _ in array_fields] == [
        "header",
        "image_width",
        "image_height",
        "ground_frame_id",
        "lanes",
    ]
    assert [name for name, _ in lane_fields] == [
        "id",
        "age",
        "measured",
        "existence_probability",
        "score",
        "position",
        "type",
        "u",
        "v",
        "ground_points",
        "ground_poly",
        "x_min",
        "x_max",
    ]
    assert {name: value for name, _, value in lane_constants}["THIRD_RIGHT"] == 3
