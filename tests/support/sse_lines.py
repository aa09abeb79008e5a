"""A line-by-line Server-Sent Events parser, the spec read literally: the reference that the
proxy's byte-level `SSESplitter` is checked against (tests/proxy/test_upstream.py)."""

from __future__ import annotations


class SSEParser:
    """Incremental Server-Sent Events parser: feed lines, get each event's data when it ends.

    Tolerates comment lines (`: keep-alive`), `event:`/`id:` fields, CRLF, and data split over
    several `data:` lines (joined with newlines, per the SSE spec).
    """

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed_line(self, line: str) -> str | None:
        line = line.rstrip("\r")
        if not line:
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        return None

    def flush(self) -> str | None:
        """The last event when the stream ended without a blank line."""
        return self.feed_line("")
