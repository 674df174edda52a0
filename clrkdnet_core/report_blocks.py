"""Blocks of BENCHMARKS.md owned by other scripts, between ``<!-- name:begin -->`` and ``<!-- name:end -->``.

``python -m benchmarks`` rewrites the file but keeps every block; a script that owns one (e.g.
``training/reproduce_synthetic.py``) replaces only its own.
"""

import re

_BLOCK = re.compile(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", re.DOTALL)


def markers(name: str) -> tuple[str, str]:
    """The begin and end marker lines of block ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def marked_blocks(text: str) -> list[str]:
    """Every block of ``text``, markers included, in order."""
    return [match.group(0) for match in _BLOCK.finditer(text)]


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with block ``name`` holding ``body`` (appended when absent); everything else is kept."""
    begin, end = markers(name)
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"
