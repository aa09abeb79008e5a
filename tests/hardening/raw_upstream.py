"""A misbehaving upstream at the socket level, for faults the scripted HTTP stub cannot produce.

Each accepted connection reads one HTTP request (headers and content-length body), then plays the
current script: a list of steps, each `bytes` (sent as is), a float (seconds to sleep) or "close"
(shut the socket). Scripts can send a non-HTTP greeting, close before any status line, stop inside
an SSE event, hang after some content, or put an error object in the stream.

`connections_open` counts sockets the server still holds, so tests can check that the proxy
closed its side of every faulted exchange.
"""

from __future__ import annotations

import json
import socket
import threading
import time

SSE_HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_event(obj: dict | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return http_chunk(f"data: {data}\n\n".encode())


def content_chunk(text: str, first: bool = False) -> dict:
    delta = {"role": "assistant", "content": ""} if first else {"content": text}
    chunk = {
        "id": "chatcmpl-raw",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "stub-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }
    if first:
        chunk["prompt_text"] = (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
            "trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi"
            "<|im_end|>\n<|im_start|>assistant\n"
        )
    return chunk


class RawUpstream:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.script: list = [b"HTTP/1.1 204 No Content\r\n\r\n", "close"]
        self.connections_open = 0
        self.requests_seen = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def play(self, *steps) -> None:
        self.script = list(steps)

    def stop(self) -> None:
        self._stopping = True
        self.sock.close()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections_open += 1
            threading.Thread(
                target=self._serve, args=(conn, list(self.script)), daemon=True
            ).start()

    def _serve(self, conn: socket.socket, script: list) -> None:
        try:
            if not self._read_request(conn):
                return
            with self._lock:
                self.requests_seen += 1
            for step in script:
                if step == "close":
                    return
                if isinstance(step, (int, float)):
                    self._sleep_unless_peer_left(conn, float(step))
                else:
                    conn.sendall(step)
            # Script finished without "close": wait for the proxy to hang up.
            self._sleep_unless_peer_left(conn, 30.0)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self.connections_open -= 1

    @staticmethod
    def _read_request(conn: socket.socket) -> bool:
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data:
            part = conn.recv(65536)
            if not part:
                return False
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            part = conn.recv(65536)
            if not part:
                return False
            body += part
        return True

    @staticmethod
    def _sleep_unless_peer_left(conn: socket.socket, seconds: float) -> None:
        """Sleep, returning early when the other side closes (recv sees EOF)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(min(left, 0.05))
            try:
                if conn.recv(1024) == b"":
                    raise ConnectionResetError("peer closed")
            except TimeoutError:
                continue
