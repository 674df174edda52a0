"""Python ``logging`` into ROS: clrkdnet_core reports e.g. a CPU fallback or an engine build with ``logging``,
and a node shows those records in its own log and on /rosout."""

import logging
from typing import Any


class RosLogHandler(logging.Handler):
    """Sends Python ``logging`` records to a ROS logger (an rclpy ``RcutilsLogger``)."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__()
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self._ros_logger.error(record.getMessage())
        elif record.levelno >= logging.WARNING:
            self._ros_logger.warning(record.getMessage())
        else:
            self._ros_logger.info(record.getMessage())


def forward_core_logs(ros_logger: Any) -> None:
    """Route the ``clrkdnet_core`` logger's INFO and above to ``ros_logger`` only."""
    core_logger = logging.getLogger("clrkdnet_core")
    core_logger.addHandler(RosLogHandler(ros_logger))
    core_logger.setLevel(logging.INFO)
    core_logger.propagate = False
