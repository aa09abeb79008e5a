"""The worker supervisor of `deepguard serve --workers N`: uvicorn's, plus the metrics cleanup
that prometheus-client's multiprocess mode asks of whoever replaces a process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import multiprocess
from uvicorn.supervisors import Multiprocess


class Workers(Multiprocess):
    """uvicorn's supervisor (one shared socket, a worker that dies or hangs is replaced,
    SIGTERM stops all, SIGHUP restarts them one by one). Each worker that leaves is marked
    dead, so its `live*` gauge values stop counting; its counters and histograms stay in the
    merged view, as totals must."""

    def __init__(self, config, sockets, metrics_dir: str) -> None:
        super().__init__(config, sockets)
        self.metrics_dir = metrics_dir

    def _marking_gone(self, step: Callable[[], None]) -> None:
        before = {p.pid for p in self.processes}
        step()
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
        super().join_all()
        for process in self.processes:
            if process.pid is not None:
                multiprocess.mark_process_dead(process.pid, self.metrics_dir)
