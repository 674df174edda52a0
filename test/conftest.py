"""Shared test set-up.

ROS 2 isolation: every pytest run talks DDS on its own domain, picked from the process id, and only
over localhost, so parallel runs on one machine never see each other's topics. It is set at import
time so that rclpy in this process and every node process a test starts inherit it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rclpy.node import Node

os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 100 + 1))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

# Spinning OpenMP workers make 2-thread PyTorch about 10x slower whenever another process (a node under test,
# the other core's job) is busy; passive waiting avoids that. OpenMP reads it once, when torch loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # after OMP_WAIT_POLICY is set

# Without CUDA the Triton kernels run under Triton's interpreter. The switch must be set before any test
# imports triton (torch.onnx and the backends do), so it lives here rather than in the Triton tests.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def ros_node(request: pytest.FixtureRequest) -> Iterator[Node]:
    """An rclpy node in a private context (no global ``rclpy.init``), destroyed after the test."""
    import rclpy  # only the ROS tests pay for importing it

    context = rclpy.context.Context()
    rclpy.init(context=context)
    name = re.sub(r"\W", "_", f"test_{request.node.name}")[:60]
    node = rclpy.create_node(name, context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
