"""Progress, log lines, streamed output and usage from a running agent, coalesced
before they reach the database.

The agent's thread only touches memory; the runner's supervising loop flushes
at most once per ``SYMPHONY_PROGRESS_FLUSH_SECONDS``: one UPDATE of the
execution and at most one event of each kind (log, output, progress). Steps,
log lines and output fragments are batched, not dropped, and a single thread
writes, so events stay in order. Text beyond ``MAX_LOG_BYTES_PER_FLUSH`` within
one interval is counted, not stored: an agent that logs faster than that is not
allowed to flood the database.

Text enters here from the agent, so it is made storable here (NUL and lone
surrogates replaced, counted in the log). A flush that cannot reach the
database keeps its batch for the next one: nothing is lost to a restart.
"""

import math
import threading
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from executions import live
from executions.lease import CONNECTION_ERRORS
from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.storable import storable_text

MAX_STEP_CHARS = 200
MAX_LINE_CHARS = 4000
MAX_LOG_BYTES_PER_FLUSH = 1_000_000


class ProgressTracker:
    def __init__(self, execution_id: int, owner: str | None = None, on_first_output=None):
        self.execution_id = execution_id
        self.owner = owner
        # Called (from the agent's thread) with the first fragment of streamed output: a
        # reader waits for the first token, so the supervisor writes it at once, not at the tick.
        self._on_first_output = on_first_output
        self._streamed = False
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
        self._replaced = 0

    def _storable(self, text: str) -> str:
        """Called with the lock held."""
        text, replaced = storable_text(text)
        self._replaced += replaced
        return text

    def report(self, percent: float | None = None, step: str | None = None) -> None:
        if percent is not None:
            if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not math.isfinite(percent):
                raise ValueError(f"progress percent must be a finite number, not {percent!r}")
            percent = min(100.0, max(0.0, float(percent)))
        step = str(step)[:MAX_STEP_CHARS] if step else None
        with self._lock:
            step = self._storable(step) if step else None
            if percent is not None and percent != self.percent:
                self.percent, self._moved = percent, True
            if step and step != self.step:
                self.step, self._moved = step, True
                self.steps.append(step)
                self._new_steps.append(step)

    def log(self, text: str) -> None:
        line = str(text)[:MAX_LINE_CHARS]
        with self._lock:
            line = self._storable(line)
            if self._line_bytes + len(line) <= MAX_LOG_BYTES_PER_FLUSH:
                self._lines.append(line)
                self._line_bytes += len(line)
            else:
                self._dropped += 1

    def stream(self, text: str) -> None:
        """A fragment of streamed output (model tokens): appended to the live log as it comes."""
        fragment = str(text)
        with self._lock:
            fragment = self._storable(fragment)
            if self._line_bytes + len(fragment) <= MAX_LOG_BYTES_PER_FLUSH:
                self._output.append(fragment)
                self._line_bytes += len(fragment)
            else:
                self._dropped += 1
            first, self._streamed = not self._streamed, True
        if first and self._on_first_output is not None:
            self._on_first_output()

    def record_usage(self, **counts: float) -> None:
        """Add to the execution's usage figures, e.g. ``prompt_tokens=12, completion_tokens=40``."""
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"usage {name} must be a finite number, not {value!r}")
        with self._lock:
            for name, value in counts.items():
                name = self._storable(name)
                self.usage[name] = self.usage.get(name, 0) + value
            self._usage_changed = True

    def flush(self) -> bool:
        """Write what changed since the last flush. False if the execution is no longer RUNNING (under our lease).

        If the database cannot be reached, what the flush held is put back for
        the next one and the error is raised to the caller; any other error
        drops the batch (it would fail again) and is raised too.
        """
        batch = self.take()
        if batch is None:
            return True
        try:
            return self.write(batch)
        except CONNECTION_ERRORS:
            self.put_back(batch)
            raise

    def take(self) -> "_Batch | None":
        """What changed since the last take, now owned by the caller (None if nothing did).

        The caller writes it (``write``) or, if the database could not be reached, puts it back.
        """
        with self._lock:
            if not (self._moved or self._lines or self._dropped or self._output or self._usage_changed):
                return None
            if self._replaced:
                note = f"[symphony] replaced {self._replaced} character(s) no database can store with U+FFFD"
                self._lines.append(note)
                self._replaced = 0
            batch = _Batch(
                percent=self.percent,
                step=self.step,
                steps=list(self.steps),
                new_steps=self._new_steps,
                lines=self._lines,
                dropped=self._dropped,
                moved=self._moved,
                output=self._output,
                usage=dict(self.usage),
            )
            self._new_steps, self._lines, self._dropped, self._moved, self._output = [], [], 0, False, []
            self._line_bytes, self._usage_changed = 0, False
            return batch

    def put_back(self, batch: "_Batch") -> None:
        with self._lock:
            self._new_steps = batch.new_steps + self._new_steps
            self._lines = batch.lines + self._lines
            self._output = batch.output + self._output
            self._dropped += batch.dropped
            self._moved = self._moved or batch.moved
            self._usage_changed = True
            self._line_bytes += sum(len(text) for text in batch.lines + batch.output)

    def write(self, batch: "_Batch") -> bool:
        mine = {"lease_owner": self.owner} if self.owner is not None else {}
        with transaction.atomic():
            updated = Execution.objects.filter(pk=self.execution_id, state=S.RUNNING, **mine).update(
                progress=batch.percent,
                current_step=batch.step,
                steps=batch.steps,
                usage=batch.usage,
                updated_at=timezone.now(),
            )
            if not updated:
                return False
            last = None
            if batch.lines or batch.dropped:
                last = ExecutionEvent.objects.create(
                    execution_id=self.execution_id,
                    kind=EventKind.LOG,
                    data={"lines": batch.lines, **({"dropped": batch.dropped} if batch.dropped else {})},
                )
            if batch.output:
                last = ExecutionEvent.objects.create(
                    execution_id=self.execution_id, kind=EventKind.OUTPUT, data={"text": "".join(batch.output)}
                )
            if batch.moved:
                last = ExecutionEvent.objects.create(
                    execution_id=self.execution_id,
                    kind=EventKind.PROGRESS,
                    data={"percent": batch.percent, "step": batch.step, "new_steps": batch.new_steps},
                )
            if last is not None:
                live.publish_on_commit(self.execution_id, last.pk)
        return True


@dataclass
class _Batch:
    """What one flush writes: taken from the tracker under its lock, put back if the write fails."""

    percent: float
    step: str
    steps: list[str]
    new_steps: list[str]
    lines: list[str]
    dropped: int
    moved: bool
    output: list[str]
    usage: dict[str, float]
