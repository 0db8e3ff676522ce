"""Bounds on a JSON document's shape, checked on its bytes before anything parses it. Pure.

A byte limit does not bound what parsing costs: 8 MiB of ``[],`` are 2.8 million lists, about
a gigabyte once parsed, and the C parser holds the interpreter for the whole time. So every
JSON body the hub reads is counted first, at C speed, piece by piece as it arrives: each
``[``, ``{`` and ``,`` may start a value, and past ``MAX_ELEMENTS`` of them the body is
refused before it is parsed. The count is an upper bound (those characters inside strings
count too), which only errs on the side of refusing. Depth is bounded too, so that no reader
recurses without end on what a client nested.
"""

from __future__ import annotations

from sync_server.errors import TooLarge

__all__ = ["MAX_DEPTH", "MAX_ELEMENTS", "ElementBudget", "nested_deeper_than"]

#: Values a JSON document may hold. A default batch of the agent (10,000 records) takes up to
#: 160,000 of them as events with ten attributes each, about 12,000 as readings; an
#: operator's body far fewer. Parsing 200,000 empty lists takes about 0.1 s and 15 MB.
MAX_ELEMENTS = 200_000
#: Nesting a JSON document may have: a batch needs 4 levels, a policy's rules 5.
MAX_DEPTH = 32

_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_QUOTE_OR_BRACKET = bytes(set(range(256)) - set(b'"[]{}'))


class ElementBudget:
    """Counts the values a document may start, one piece at a time; TooLarge past ``limit``."""

    def __init__(self, limit: int = MAX_ELEMENTS) -> None:
        self.limit = limit
        self.count = 0

    def feed(self, piece: bytes) -> None:
        """Count ``piece``'s values; TooLarge as soon as the document holds too many."""
        self.count += piece.count(b",") + piece.count(b"[") + piece.count(b"{")
        if self.count > self.limit:
            raise TooLarge(f"JSON document holds more than {self.limit:,} elements; refused "
                           "(send fewer records per batch)")


def nested_deeper_than(document: bytes, depth: int) -> bool:
    """Whether ``document`` nests arrays and objects more than ``depth`` levels deep.

    Escapes, then everything but quotes and brackets, then strings are removed (an empty
    pair of quotes at once, what is left between every other pair next): only brackets are
    left, all made square; each pass of removing every ``[]`` peels one
    level off the innermost containers, so a balanced document empties in as many passes as
    it is deep. A malformed one may never empty: its parser says what is wrong with it.
    """
    unescaped = document.replace(b"\\\\", b"").replace(b'\\"', b"")
    quotes_and_brackets = unescaped.translate(None, _NOT_QUOTE_OR_BRACKET).replace(b'""', b"")
    brackets = b"".join(quotes_and_brackets.split(b'"')[::2]).translate(_SQUARE)
    for _ in range(depth):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return b"[]" in brackets
