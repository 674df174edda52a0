"""Installs clrkdnet_ros into the repo's ament prefix the way ``colcon build --symlink-install`` does.

Run with the venv's interpreter: ``.venv/bin/python scripts/install_package.py [INSTALL_PREFIX]``.
``ros2 run`` and ``ros2 launch`` find a package through the ament index under a prefix on
``AMENT_PREFIX_PATH`` (scripts/link_venv.py puts the prefix there for the venv), then look for its
executables in ``lib/<package>/`` and its launch files in ``share/<package>/``. This writes exactly the files
setup.py's ``data_files`` and ``console_scripts`` name, at the paths an ament_python install gives them:

- every data file (ament index marker, package.xml, launch/, config/, msg/, models/) as a symlink to the
  repo's file, so launch and config edits show without a re-install;
- ``lib/clrkdnet_ros/<name>`` for every console script: a launcher with the venv's interpreter that imports
  the entry point from the repo (on ``sys.path`` through the venv's ``.pth``), so Python edits show too.

Files installed by an earlier run are replaced, so a file removed from the repo leaves no stale link.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import setuptools  # noqa: F401  (first, so that distutils below is setuptools' copy, the one setup() uses)

# isort: split
from distutils.core import run_setup

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "clrkdnet_ros"

LAUNCHER = """\
#!{python}
# Written by scripts/install_package.py: runs {module}:{function} from the repository.
import sys

from {module} import {function}

if __name__ == "__main__":
    sys.exit({function}())
"""


def install(prefix: Path) -> list[Path]:
    """Install the package into ``prefix``; returns the paths written."""
    cwd = Path.cwd()
    os.chdir(REPO)  # setup.py globs its data files relative to the repo
    try:
        distribution = run_setup("setup.py", stop_after="init")
    finally:
        os.chdir(cwd)
    for owned in (prefix / "share" / PACKAGE, prefix / "lib" / PACKAGE):
        shutil.rmtree(owned, ignore_errors=True)
    written = []
    for folder, files in distribution.data_files:
        for name in files:
            target = prefix / folder / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            target.symlink_to(REPO / name)
            written.append(target)
    for spec in distribution.entry_points["console_scripts"]:
        name, _, entry = (part.strip() for part in spec.partition("="))
        module, _, function = entry.partition(":")
        target = prefix / "lib" / PACKAGE / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(LAUNCHER.format(python=sys.executable, module=module, function=function))
        target.chmod(0o755)
        written.append(target)
    return written


def main() -> int:
    if sys.prefix == sys.base_prefix:
        print("error: run this with the venv's python, not the system one", file=sys.stderr)
        return 2
    prefix = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "install").resolve()
    written = install(prefix)
    print(f"installed {PACKAGE} into {prefix} ({len(written)} files, linked to {REPO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
