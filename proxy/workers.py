"""The worker supervisor of `deepguard serve --workers N`: uvicorn's, plus a listening socket per
worker and the metrics cleanup that prometheus-client's multiprocess mode asks of whoever
replaces a process."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from prometheus_client import multiprocess
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("deepguard.serve")

# Linux, the BSDs and macOS have it; elsewhere several workers cannot start (one worker can).
REUSEPORT = getattr(socket, "SO_REUSEPORT", None)


def worker_socket(host: str, port: int, *, share: bool = True) -> socket.socket:
    """A socket bound to the serving address beside the other workers' (SO_REUSEPORT): the kernel
    then hands each new connection to one of the listening sockets by a hash of its addresses,
    so connections spread evenly over the workers whichever of them is awake first."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def worker_sockets(host: str, port: int, n: int) -> list[socket.socket]:
    """`n` worker sockets, after checking that nothing listens on the address yet: SO_REUSEPORT
    would otherwise let a second `deepguard serve` on the same port quietly take half the
    connections of the first, where it should fail to start."""
    if REUSEPORT is None:
        raise OSError("this platform has no SO_REUSEPORT, so several workers cannot share a port")
    worker_socket(host, port, share=False).close()  # OSError (in use) if anything listens there
    first = worker_socket(host, port)
    port = first.getsockname()[1]  # the port the system chose, where `port` was 0
    return [first, *(worker_socket(host, port) for _ in range(n - 1))]


class Workers(Multiprocess):
    """uvicorn's supervisor (a worker that dies or hangs is replaced, SIGTERM stops all, SIGHUP
    restarts them one by one), with two changes:

    - Each worker gets a listening socket of its own (`worker_socket`). With uvicorn's one shared
      socket, whichever worker woke first accepted a whole burst: 256 connections opened at once
      split 210 / 46 over two workers, and the busier one capped the throughput of all
      (docs/benchmarks.md). The price: connections still waiting in a dying worker's own queue
      are reset instead of going to another worker.
    - Each worker that leaves is marked dead, so its `live*` gauge values stop counting; its
      counters and histograms stay in the merged view, as totals must."""

    def __init__(self, config, metrics_dir: str) -> None:
        self._unused = worker_sockets(config.host, config.port, config.workers)
        self._host, self._port = self._unused[0].getsockname()[:2]
        # The first workers' sockets listen before any worker runs: connections that arrive
        # while one worker is still starting wait in its queue instead of all landing on the
        # first worker up (and staying there, on keep-alive). A replacement's socket joins only
        # once its worker runs, so new connections never wait on a worker that is not there yet.
        for sock in self._unused:
            sock.listen(config.backlog)
        self._handed: list[socket.socket] = []
        super().__init__(config, [])
        self.metrics_dir = metrics_dir
        log.info("listening on %s:%d, one socket per worker", self._host, self._port)

    # uvicorn starts every worker with `Process(self.config, self.sockets)`, at start-up, on a
    # replacement, on SIGHUP and SIGTTIN. Reading `sockets` therefore hands out the next worker's
    # own socket; the parent closes its copies once the workers that got them have started, so a
    # socket lives exactly as long as its worker.
    @property
    def sockets(self) -> list[socket.socket]:
        sock = self._unused.pop() if self._unused else worker_socket(self._host, self._port)
        self._handed.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, value: list[socket.socket]) -> None:
        pass  # uvicorn's shared socket list: not used, each worker gets its own

    def _close_handed(self) -> None:
        for sock in self._handed:
            sock.close()
        self._handed.clear()

    def init_processes(self) -> None:
        try:
            super().init_processes()
        finally:
            self._close_handed()

    def handle_ttin(self) -> None:
        try:
            super().handle_ttin()
        finally:
            self._close_handed()

    def _marking_gone(self, step: Callable[[], None]) -> None:
        before = {p.pid for p in self.processes}
        try:
            step()
        finally:
            self._close_handed()
        for pid in before - {p.pid for p in self.processes}:
            if pid is not None:
                multiprocess.mark_process_dead(pid, self.metrics_dir)

    def keep_subprocess_alive(self) -> None:
        self._marking_gone(super().keep_subprocess_alive)

    def restart_all(self) -> None:
        self._marking_gone(super().restart_all)

    def handle_ttou(self) -> None:
        self._marking_gone(super().handle_ttou)

    def join_all(self) -> None:
        for sock in self._unused:
            sock.close()
        super().join_all()
        for process in self.processes:
            if process.pid is not None:
                multiprocess.mark_process_dead(process.pid, self.metrics_dir)
