"""A ROS process run by another program: start it, wait until it is ready, stop it.

The one way ``bag replay``, the node benchmark and the tests run the ``lane_detector`` node (and the helper
processes around it): output goes to a log file that error messages point to, readiness is a condition the
caller checks over DDS (the process may die meanwhile, which is reported at once), and stopping is a SIGINT
(the node's clean shutdown) with a kill as the last resort.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Self

from clrkdnet_core.errors import ClrkdnetError

_POLL_S = 0.05


class NodeProcessError(ClrkdnetError):
    """The process exited or did not become ready in time."""


def lane_detector_command(ros_args: Sequence[str] = ()) -> list[str]:
    """``python -m clrkdnet_ros.lane_detector --ros-args ...`` with this interpreter."""
    return [sys.executable, "-m", "clrkdnet_ros.lane_detector", "--ros-args", *ros_args]


def without_variables(prefixes: Sequence[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (default: this process's) without the variables starting with ``prefixes``."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items() if not name.startswith(tuple(prefixes))}


def wait_until(
    ready: Callable[[], bool], timeout_s: float, waiting_for: str, process: "NodeProcess | None" = None
) -> None:
    """Poll ``ready`` until it holds; raise :class:`NodeProcessError` when ``process`` exits or ``timeout_s``
    passes first ("<waiting_for> within N s; see <log>"). Without ``process`` (a node someone else runs) only
    the timeout applies."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process is not None:
            process.check_running(" before it was ready")
        if time.monotonic() > deadline:
            where = f"; see {process.log}" if process is not None else ""
            raise NodeProcessError(f"{waiting_for} within {timeout_s:.0f} s{where}")
        time.sleep(_POLL_S)


class NodeProcess:
    """One child process; a context manager that stops it on exit.

    With ``interactive`` its stdin and stdout are pipes (line protocols such as the benchmark camera's) and
    only stderr goes to ``log``.
    """

    def __init__(
        self,
        command: Sequence[str],
        log: Path,
        name: str = "the lane_detector node",
        env: Mapping[str, str] | None = None,
        interactive: bool = False,
    ) -> None:
        self.log = Path(log)
        self.name = name
        self._log_file = self.log.open("w")
        pipe = subprocess.PIPE if interactive else None
        self.process = subprocess.Popen(
            list(command),
            stdin=pipe,
            stdout=pipe if interactive else self._log_file,
            stderr=self._log_file if interactive else subprocess.STDOUT,
            env=None if env is None else dict(env),
            text=True,
        )

    @property
    def stdin(self) -> IO[str]:
        return self.process.stdin

    @property
    def stdout(self) -> IO[str]:
        return self.process.stdout

    def output(self) -> str:
        """Everything the process logged so far."""
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def check_running(self, when: str = "") -> None:
        """Raise :class:`NodeProcessError` when the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise NodeProcessError(f"{self.name} exited with code {code}{when}; see {self.log}")

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, waiting_for: str) -> None:
        """:func:`wait_until` for this process."""
        wait_until(ready, timeout_s, waiting_for, self)

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGINT (the node shuts down cleanly), then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self._log_file.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
