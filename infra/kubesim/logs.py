"""Container logs as the kubelet keeps them: one log per container instance, plus the previous."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from infra.kubesim.clock import format_time_nano, utc_now


@dataclass(frozen=True)
class LogLine:
    time: datetime
    text: str


@dataclass(frozen=True)
class LogQuery:
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None

    def select(self, lines: list[LogLine], now: datetime) -> list[LogLine]:
        since = self.since_time
        if self.since_seconds is not None:
            since = now - timedelta(seconds=self.since_seconds)
        if since is not None:
            lines = [line for line in lines if line.time >= since]
        if self.tail_lines is not None:
            lines = lines[-self.tail_lines :] if self.tail_lines > 0 else []
        return lines

    def render(self, lines: list[LogLine]) -> str:
        if self.timestamps:
            text = "".join(f"{format_time_nano(line.time)} {line.text}\n" for line in lines)
        else:
            text = "".join(f"{line.text}\n" for line in lines)
        if self.limit_bytes is not None:
            text = text.encode()[: self.limit_bytes].decode(errors="ignore")
        return text


@dataclass
class _ContainerLog:
    current: list[LogLine] = field(default_factory=list)
    previous: list[LogLine] | None = None


class LogBook:
    """Log lines per pod uid and container; ``changed`` wakes followers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._logs: dict[tuple[str, str], _ContainerLog] = {}

    def append(self, pod_uid: str, container: str, text: str) -> None:
        with self._lock:
            log = self._logs.setdefault((pod_uid, container), _ContainerLog())
            # Keep the order of appends even if the wall clock steps back.
            moment = utc_now()
            if log.current and moment < log.current[-1].time:
                moment = log.current[-1].time
            for part in text.splitlines() or [""]:
                log.current.append(LogLine(moment, part))
            self.changed.notify_all()

    def start_new_instance(self, pod_uid: str, container: str) -> None:
        """A container restarted: its log so far becomes the ``previous`` log."""
        with self._lock:
            log = self._logs.setdefault((pod_uid, container), _ContainerLog())
            log.previous, log.current = log.current, []
            self.changed.notify_all()

    def lines(self, pod_uid: str, container: str, *, previous: bool = False) -> list[LogLine]:
        with self._lock:
            log = self._logs.get((pod_uid, container), _ContainerLog())
            return list((log.previous or []) if previous else log.current)

    def has_previous(self, pod_uid: str, container: str) -> bool:
        with self._lock:
            log = self._logs.get((pod_uid, container))
            return log is not None and log.previous is not None

    def wait(self, timeout: float) -> None:
        with self._lock:
            self.changed.wait(timeout)

    def forget(self, pod_uid: str) -> None:
        with self._lock:
            for key in [key for key in self._logs if key[0] == pod_uid]:
                del self._logs[key]
            self.changed.notify_all()
