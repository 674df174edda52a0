"""Import contracts between the top-level packages (docs/ARCHITECTURE.md), by a static scan of every file.

The scan reads the source, not the running interpreter: imports inside functions and the module names given to
``importlib.import_module`` / ``__import__`` as string literals (or f-strings, by their literal start) count
as much as the imports at the top of a file. ``make lint`` runs this file.
"""

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# ROS 2 itself and everything built on it. rosbags is a pure-Python bag library, but reading bags is the ROS
# layer's job (clrkdnet_ros.bag): the core and the training code never see a bag.
ROS = (
    "rclpy",
    "rcl_*",
    "rmw*",
    "rosidl*",
    "*_msgs",
    "*_srvs",
    "*_interfaces",
    "launch",
    "launch_*",
    "ament_*",
    "tf2*",
    "cv_bridge",
    "message_filters",
    "rosbag*",
    "clrkdnet_ros",
)
# The installed ROS package (setup.py) holds clrkdnet_ros and clrkdnet_core only: neither may need the rest.
NOT_INSTALLED = ("training", "benchmarks")
CONTRACTS = {
    "clrkdnet_core": (*ROS, *NOT_INSTALLED),
    "clrkdnet_ros": NOT_INSTALLED,
    "training": (*ROS, "benchmarks"),
}
_IMPORT_FUNCTIONS = {"import_module", "__import__"}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, literal dynamic ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and _called_name(node.func) in _IMPORT_FUNCTIONS and node.args:
            name = _literal_start(node.args[0])
            if name:
                found.append((node.lineno, name))
    return sorted(found)


def contract_violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """``file:line: import X`` for every import in ``package`` whose top-level name matches ``forbidden``."""
    violations = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text(encoding="utf-8")):
            top = module.split(".")[0]
            rule = next((pattern for pattern in forbidden if fnmatch(top, pattern)), None)
            if rule is not None:
                violations.append(f"{path.relative_to(REPO)}:{line}: import {module} (forbidden: {rule})")
    return violations


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _literal_start(argument: ast.expr) -> str | None:
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
    if isinstance(argument, ast.JoinedStr) and argument.values:
        first = argument.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


@pytest.mark.parametrize("package", CONTRACTS)
def test_import_contract(package):
    violations = contract_violations(package, CONTRACTS[package])
    assert not violations, f"{package} breaks its import contract:\n" + "\n".join(violations)


def test_the_scan_sees_function_level_and_dynamic_imports():
    source = (
        "import os\n"
        "def f():\n"
        "    from rclpy.node import Node\n"
        "    import importlib\n"
        "    importlib.import_module('benchmarks.node')\n"
        "    __import__(f'sensor_msgs.{name}')\n"
        "from . import sibling\n"
    )
    assert imported_modules(source) == [
        (1, "os"),
        (3, "rclpy.node"),
        (4, "importlib"),
        (5, "benchmarks.node"),
        (6, "sensor_msgs."),
    ]
    forbidden = CONTRACTS["clrkdnet_core"]
    names = [module.split(".")[0] for _, module in imported_modules(source)]
    assert [name for name in names if any(fnmatch(name, rule) for rule in forbidden)] == [
        "rclpy",
        "benchmarks",
        "sensor_msgs",
    ]


if __name__ == "__main__":  # `make lint`: the scan alone, without pytest's set-up
    import sys

    found = [line for package, rules in CONTRACTS.items() for line in contract_violations(package, rules)]
    print("\n".join(found) if found else f"import contracts hold ({', '.join(CONTRACTS)})")
    sys.exit(1 if found else 0)
