"""A sliding window over a text stream, for parsers that read a value at a time in chunks."""

from __future__ import annotations

from typing import TextIO

__all__ = ["READ_CHUNK", "TextWindow"]

READ_CHUNK = 1024 * 1024


class TextWindow:
    """``buf[pos:]`` is what is read but not yet consumed; ``_more()`` appends the next chunk.

    A parser whose token or value touches the end of ``buf`` calls ``_more()`` and tries again,
    so nothing is cut at a chunk boundary; what was consumed is dropped at each refill, so the
    window stays about one chunk (plus the longest value, which the parser bounds) long.
    """

    def __init__(self, stream: TextIO, chunk: int = READ_CHUNK) -> None:
        self.stream = stream
        self.chunk = chunk
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _more(self) -> bool:
        """Read one more chunk into the window; False (and ``eof`` set) at the end of the stream."""
        if self.eof:
            return False
        text = self.stream.read(self.chunk)
        if not text:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True
