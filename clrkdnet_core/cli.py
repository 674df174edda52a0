"""Shared behaviour of the command-line tools: one readable line and a non-zero exit on user errors."""

import sys
from collections.abc import Callable

from clrkdnet_core.errors import ClrkdnetError


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run ``main``; a :class:`ClrkdnetError` or a missing file becomes ``error: ...`` and exit code 2."""
    try:
        return main(argv)
    except (ClrkdnetError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
