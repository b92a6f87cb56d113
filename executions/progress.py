"""Progress, log lines, streamed output and usage from a running agent, coalesced
before they reach the database.

The agent's thread only touches memory; the runner's supervising loop flushes
at most once per ``SYMPHONY_PROGRESS_FLUSH_SECONDS``: one UPDATE of the
execution and at most one event of each kind (log, output, progress). Steps,
log lines and output fragments are batched, not dropped, and a single thread
writes, so events stay in order. Text beyond ``MAX_LOG_BYTES_PER_FLUSH`` within
one interval is counted, not stored: an agent that logs faster than that is not
allowed to flood the database.
"""

import math
import threading

from django.db import transaction
from django.utils import timezone

from executions import live
from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S

MAX_STEP_CHARS = 200
MAX_LINE_CHARS = 4000
MAX_LOG_BYTES_PER_FLUSH = 1_000_000


class ProgressTracker:
    def __init__(self, execution_id: int):
        self.execution_id = execution_id
        self._lock = threading.Lock()
        self.percent = 0.0
        self.step = ""
        self.steps: list[str] = []
        self._new_steps: list[str] = []
        self._lines: list[str] = []
        self._line_bytes = 0
        self._dropped = 0
        self._output: list[str] = []
        self._moved = False
        self.usage: dict[str, float] = {}
        self._usage_changed = False

    def report(self, percent: float | None = None, step: str | None = None) -> None:
        if percent is not None:
            if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not math.isfinite(percent):
                raise ValueError(f"progress percent must be a finite number, not {percent!r}")
            percent = min(100.0, max(0.0, float(percent)))
        step = str(step)[:MAX_STEP_CHARS] if step else None
        with self._lock:
            if percent is not None and percent != self.percent:
                self.percent, self._moved = percent, True
            if step and step != self.step:
                self.step, self._moved = step, True
                self.steps.append(step)
                self._new_steps.append(step)

    def log(self, text: str) -> None:
        line = str(text)[:MAX_LINE_CHARS]
        with self._lock:
            if self._line_bytes + len(line) <= MAX_LOG_BYTES_PER_FLUSH:
                self._lines.append(line)
                self._line_bytes += len(line)
            else:
                self._dropped += 1

    def stream(self, text: str) -> None:
        """A fragment of streamed output (model tokens): appended to the live log as it comes."""
        fragment = str(text)
        with self._lock:
            if self._line_bytes + len(fragment) <= MAX_LOG_BYTES_PER_FLUSH:
                self._output.append(fragment)
                self._line_bytes += len(fragment)
            else:
                self._dropped += 1

    def record_usage(self, **counts: float) -> None:
        """Add to the execution's usage figures, e.g. ``prompt_tokens=12, completion_tokens=40``."""
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"usage {name} must be a finite number, not {value!r}")
        with self._lock:
            for name, value in counts.items():
                self.usage[name] = self.usage.get(name, 0) + value
            self._usage_changed = True

    def flush(self) -> bool:
        """Write what changed since the last flush. False if the execution is no longer RUNNING."""
        with self._lock:
            if not (self._moved or self._lines or self._dropped or self._output or self._usage_changed):
                return True
            percent, step, steps = self.percent, self.step, list(self.steps)
            new_steps, lines, dropped, moved = self._new_steps, self._lines, self._dropped, self._moved
            output, usage = "".join(self._output), dict(self.usage)
            self._new_steps, self._lines, self._dropped, self._moved, self._output = [], [], 0, False, []
            self._line_bytes, self._usage_changed = 0, False
        with transaction.atomic():
            updated = Execution.objects.filter(pk=self.execution_id, state=S.RUNNING).update(
                progress=percent, current_step=step, steps=steps, usage=usage, updated_at=timezone.now()
            )
            if not updated:
                return False
            last = None
            if lines or dropped:
                last = ExecutionEvent.objects.create(
                    execution_id=self.execution_id,
                    kind=EventKind.LOG,
                    data={"lines": lines, **({"dropped": dropped} if dropped else {})},
                )
            if output:
                last = ExecutionEvent.objects.create(
                    execution_id=self.execution_id, kind=EventKind.OUTPUT, data={"text": output}
                )
            if moved:
                last = ExecutionEvent.objects.create(
                    execution_id=self.execution_id,
                    kind=EventKind.PROGRESS,
                    data={"percent": percent, "step": step, "new_steps": new_steps},
                )
            if last is not None:
                live.publish_on_commit(self.execution_id, last.pk)
        return True
