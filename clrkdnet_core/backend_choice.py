"""``backend="auto"`` and ``precision="auto"``: the fastest backend and precision for a device, and why.

Measured with ``python -m clrkdnet_core.backends`` and the benchmarks (BENCHMARKS.md): on a CPU OpenVINO is
the fastest runtime, in bf16 where the CPU has native bf16 instructions (its F1@50 stays within the accuracy
gate of fp32, see the ``precision_f1`` benchmark); on CUDA TensorRT fp16, else torch fp16. int8 is never
chosen automatically: it needs calibration images and changes results (README, INT8). Exact fp32, the
precision of the official code's results, is ``backend="torch", precision="fp32"``.
"""

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

from clrkdnet_core.backend_options import AUTO, BACKENDS, PRECISIONS
from clrkdnet_core.errors import BackendError

logger = logging.getLogger(__name__)

# Backends in order of preference per device type, and the precisions each may pick automatically (best
# first).
PREFERENCE = {
    "cuda": ("tensorrt", "torch"),
    "cpu": ("openvino", "onnxruntime", "torch"),
}
AUTO_PRECISIONS = {
    "cuda": {"tensorrt": ("fp16",), "torch": ("fp16",), "onnxruntime": ("fp16",)},
    # onnxruntime's fp16 on a CPU is slower than its fp32 (no native fp16 kernels): fp32 there.
    "cpu": {"openvino": ("bf16", "fp32"), "onnxruntime": ("fp32",), "torch": ("fp32",)},
}
# The Python module each backend needs; torch is always there.
MODULES = {"tensorrt": "tensorrt", "openvino": "openvino", "onnxruntime": "onnxruntime", "torch": "torch"}
# /proc/cpuinfo flags of native bf16 arithmetic (AVX-512 BF16 on Zen 4 / Cooper Lake, AMX on Sapphire Rapids).
# Without them OpenVINO would emulate bf16, slower than fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class BackendChoice:
    """What runs the network, and why (one line for the start-up log and the diagnostics)."""

    backend: str
    precision: str
    reason: str


def cpu_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, ...]:
    """The native bf16 instruction flags of this CPU (empty where there are none or /proc is not there)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return tuple(flag for flag in BF16_FLAGS if flag in flags)


def importable(backend: str) -> bool:
    """Whether the runtime of ``backend`` imports here (a broken install counts as missing)."""
    try:
        importlib.import_module(MODULES[backend])
    except Exception:  # any failure to import means the backend cannot run
        return False
    return True


def choose_backend(
    device_type: str, backend: str = AUTO, precision: str = AUTO, bf16_flags: tuple[str, ...] | None = None
) -> BackendChoice:
    """Resolve ``auto`` backend and/or precision for ``device_type`` (``cpu`` or ``cuda``).

    Explicit values are kept as given (``create_backend`` checks them). With ``backend="auto"`` and an
    explicit precision, the first backend in :data:`PREFERENCE` that is installed and runs that precision is
    taken.

    Args:
        device_type: ``cpu`` or ``cuda``.
        backend: a name of :data:`~clrkdnet_core.backend_options.BACKENDS` or ``auto``.
        precision: one of :data:`~clrkdnet_core.backend_options.PRECISIONS` or ``auto``.
        bf16_flags: the CPU's native bf16 flags (default: read from /proc/cpuinfo); for tests.

    Raises:
        BackendError: an unknown name, or no installed backend runs the requested precision on this device.
    """
    if backend != AUTO and backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; available: {', '.join((AUTO, *BACKENDS))}")
    if precision != AUTO and precision not in PRECISIONS:
        choices = ", ".join((AUTO, *PRECISIONS))
        raise BackendError(f"unknown precision {precision!r}; expected one of {choices}")
    if AUTO not in (backend, precision):
        return BackendChoice(backend, precision, f"{backend} {precision} as set")
    if backend == AUTO and precision == AUTO:
        # In order, stopping at the first that imports: importing a runtime costs start-up time.
        chosen = next(name for name in PREFERENCE[device_type] if name == "torch" or importable(name))
        missing = PREFERENCE[device_type][: PREFERENCE[device_type].index(chosen)]
        why = f"the fastest installed backend on {device_type}"
        if missing:
            why += f" ({', '.join(missing)} not installed)"
    elif backend == AUTO:
        chosen = next(
            (
                name
                for name in PREFERENCE[device_type]
                if precision in _declared(name, device_type) and (name == "torch" or importable(name))
            ),
            None,
        )
        if chosen is None:
            raise BackendError(f"no installed backend runs precision {precision} on {device_type}")
        why = f"the fastest installed backend that runs {precision} on {device_type}"
    else:
        chosen, why = backend, "as set"
    if precision != AUTO:
        return BackendChoice(chosen, precision, f"{chosen} {precision}: {why}, precision as set")
    picked, precision_why = _auto_precision(chosen, device_type, bf16_flags)
    return BackendChoice(chosen, picked, f"{chosen} {picked}: {why}; {precision_why}")


def _auto_precision(backend: str, device_type: str, bf16_flags: tuple[str, ...] | None) -> tuple[str, str]:
    """The best precision of ``backend`` on ``device_type`` and why."""
    for precision in AUTO_PRECISIONS[device_type].get(backend, ()):
        if precision not in _declared(backend, device_type):
            continue
        if precision == "bf16":
            flags = cpu_bf16_flags() if bf16_flags is None else bf16_flags
            if not flags:
                continue
            return precision, f"bf16 because the CPU has native bf16 instructions ({', '.join(flags)})"
        if precision == "fp16":
            return precision, "fp16 on CUDA"
        if backend == "openvino":
            return precision, "fp32 because the CPU has no native bf16 instructions"
        return precision, f"fp32, the fastest precision of {backend} on {device_type}"
    return "fp32", f"fp32, the only precision of {backend} on {device_type}"


def _declared(backend: str, device_type: str) -> tuple[str, ...]:
    """The precisions ``backend`` declares for ``device_type`` (read without importing its runtime)."""
    module_name, class_name = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module_name), class_name).PRECISIONS.get(device_type, ())
