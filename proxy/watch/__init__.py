"""Refusal detector, per-token recovery watcher and hold-back window (pure, I/O-free)."""

from proxy.watch.detector import (
    IncrementalRefusalClassifier,
    RefusalClassifier,
    RefusalDetector,
    RefusalScanner,
)
from proxy.watch.log import recovery_action, recovery_log_record
from proxy.watch.observe import observe
from proxy.watch.settings import WatchSettings
from proxy.watch.watcher import ChoiceWatch, Outcome

__all__ = [
    "ChoiceWatch",
    "IncrementalRefusalClassifier",
    "Outcome",
    "RefusalClassifier",
    "RefusalDetector",
    "RefusalScanner",
    "WatchSettings",
    "observe",
    "recovery_action",
    "recovery_log_record",
]
