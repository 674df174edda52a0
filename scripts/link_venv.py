"""Makes the repo and its clrkdnet_msgs build usable from the venv with nothing sourced.

Run with the venv's interpreter: ``.venv/bin/python scripts/link_venv.py [INSTALL_PREFIX]``.
Writes two files into the venv's site-packages:

- ``clrkdnet_dev.pth``: puts the repo root (``clrkdnet_core``, ``clrkdnet_ros``, ``training``) and the
  prefix's Python folder (``clrkdnet_msgs``) on ``sys.path`` and imports the module below.
- ``clrkdnet_dev_env.py``: what ``source install/setup.bash`` would do. rosidl's type support
  dispatch dlopen()s ``libclrkdnet_msgs__rosidl_typesupport_*.so`` by bare name, so the prefix's
  ``lib`` folder must be on ``LD_LIBRARY_PATH`` when the process starts; ament_index lookups need
  ``AMENT_PREFIX_PATH``.

The .pth name sorts before ``ros_wheels_bootstrapper.pth``, whose re-exec then starts the real
interpreter with these variables already set.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ENV_MODULE = '''\
"""Written by {script}; do not edit. Sets the variables a sourced ROS 2 prefix would set."""

import os
import sys

_PREFIX = {prefix!r}
_LIB = os.path.join(_PREFIX, "lib")


def _prepend(name: str, *values: str) -> bool:
    parts = [p for p in os.environ.get(name, "").split(os.pathsep) if p]
    missing = [v for v in values if v not in parts]
    if missing:
        os.environ[name] = os.pathsep.join(missing + parts)
    return bool(missing)


_prepend("AMENT_PREFIX_PATH", _PREFIX, sys.prefix)
# The dynamic loader reads LD_LIBRARY_PATH only at start-up. ros_wheels_bootstrapper re-executes
# the interpreter once per process tree; when it has already done so without our folder (a child
# started with a trimmed environment), re-execute here instead.
if _prepend("LD_LIBRARY_PATH", _LIB) and os.environ.get("_ROS_WHEELS_BOOTSTRAP_COMPLETE"):
    os.execv(sys.executable, sys.orig_argv)
'''


def main() -> int:
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "install").resolve()
    if sys.prefix == sys.base_prefix:
        print("error: run this with the venv's python, not the system one", file=sys.stderr)
        return 2
    site_packages = Path(sysconfig.get_path("purelib"))
    py_dir = f"python{sys.version_info.major}.{sys.version_info.minor}"
    msgs_python = prefix / "lib" / py_dir / "site-packages"

    module = ENV_MODULE.format(script="scripts/link_venv.py", prefix=str(prefix))
    (site_packages / "clrkdnet_dev_env.py").write_text(module)
    pth = f"{REPO}\n{msgs_python}\nimport clrkdnet_dev_env\n"
    (site_packages / "clrkdnet_dev.pth").write_text(pth)
    print(f"linked {site_packages} -> {REPO} and {prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
