"""Reading the upstream's Server-Sent Events: bytes in, each complete event's data out."""

from __future__ import annotations

# An SSE event larger than this is not a chat chunk (the first one carries the whole prompt).
MAX_EVENT_BYTES = 64 * 1024 * 1024


class SSESplitter:
    """Incremental SSE parser on bytes: feed body pieces, get each complete event's data.

    The fast path splits on blank lines and takes a lone `data: ` line as is, with no decoding;
    anything else (comments, other fields, multi-line data) goes the spec's slow way. CRLF and
    lone CR line ends are normalised first, also when a CRLF is split across two pieces.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._cr_pending = False
        self._max = max_event_bytes

    def feed(self, data: bytes) -> list[bytes]:
        if self._cr_pending or b"\r" in data:
            data = self._normalise(data)
        buf = self._buf + data if self._buf else data
        if b"\n\n" not in buf:
            if len(buf) > self._max:
                raise ValueError("an event is larger than the limit")
            self._buf = buf
            return []
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        out = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:
                out.append(block[6:])
            elif block:
                event = _event_data(block)
                if event is not None:
                    out.append(event)
        return out

    def _normalise(self, data: bytes) -> bytes:
        if self._cr_pending and data[:1] == b"\n":
            data = data[1:]  # the LF of a CRLF whose CR ended the last piece
        self._cr_pending = data[-1:] == b"\r"
        return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _event_data(block: bytes) -> bytes | None:
    """The data of one event's lines (no blank line inside), or None when it has none."""
    data = []
    for line in block.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        field, _, value = line.partition(b":")
        if field == b"data":
            data.append(value[1:] if value[:1] == b" " else value)
    return b"\n".join(data) if data else None
