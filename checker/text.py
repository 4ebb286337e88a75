"""Text from files and arguments, made safe for a terminal.

A rule's expression, a file name or a trace's metadata comes from outside; before
it reaches a terminal every control character is escaped, so what a file holds is
shown, never obeyed.
"""

from __future__ import annotations

import re

#: characters a terminal acts on instead of showing: C0 (ESC starts escape sequences,
#: OSC ones among them; line breaks split rows), DEL, C1 (CSI and OSC have one-byte
#: forms), the Unicode line and paragraph separators and the bidirectional overrides
#: that reorder what is shown (Trojan Source)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def control_character(text: str, allow: str = "") -> str | None:
    """The first control character of ``text`` (see ``_CONTROL``) not in ``allow``."""
    for m in _CONTROL.finditer(text):
        if m.group() not in allow:
            return m.group()
    return None


def printable(text: str) -> str:
    """``text`` with every control character escaped as Python writes it (``\\n``,
    ``\\x1b``, ``\\u202e``): what a file holds is shown, never obeyed by the
    terminal, and one value stays on one line."""
    return _CONTROL.sub(lambda m: _escape(m.group()), text)


def one_line(text: str) -> str:
    """Rule text (a spec's expression, an ``--expr``, a kernel's condition) for one
    line of a terminal, as C reads it: each run of white space (line breaks and tabs
    among it) as one space, except the line break that ends a ``//`` comment, shown
    as ``\\n`` (else the comment would seem to swallow the rest); any other control
    character escaped as :func:`printable` does."""
    lines = [" ".join(_WHITE_SPACE.split(line)).strip() for line in text.split("\n")]
    shown = ""
    for line in filter(None, lines):
        if shown:
            shown += " \\n " if "//" in shown.rsplit("\\n", 1)[-1] else " "
        shown += line
    return printable(shown)


#: the white space C reads between tokens, but the line break (see one_line)
_WHITE_SPACE = re.compile("[ \t\r\f\v]+")


def _escape(c: str) -> str:
    if c in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def vcpu_count(n: int) -> str:
    """``n`` vCPUs as a phrase: "1 vCPU", "2 vCPUs"."""
    return f"{n} vCPU{'s' if n != 1 else ''}"
