"""What an agent receives beside its input: progress, log, cancellation, metadata and context."""

import asyncio
import threading
import time

from executions.models import Execution
from executions.progress import ProgressTracker


class ExecutionContext:
    """What an agent receives beside its input: progress, log, cancellation and metadata."""

    def __init__(self, execution: Execution, tracker: ProgressTracker, deadline: float):
        self.execution_id = execution.pk
        self.task_id = execution.task_id
        self.task_name = execution.task.name
        self.agent_name = execution.agent.name
        self.attempt = execution.attempt
        self.max_attempts = execution.max_attempts
        self.metadata = dict(execution.metadata)
        # What the caller gave the Enhanced Executor as ``context``, and the workflow it runs in.
        self.context = self.metadata.get("context") or {}
        self.workflow_id = self.metadata.get("workflow_id") or self.metadata.get("workflow_run")
        self.input = execution.task.input_data
        self.deadline = deadline
        self._tracker = tracker
        self._cancelled = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def progress(self, percent: float | None = None, step: str | None = None) -> None:
        """Report how far along the agent is (0-100) and, optionally, the step it is on."""
        self._tracker.report(percent, step)

    def log(self, text: str) -> None:
        """Append a line to the execution's live log."""
        self._tracker.log(text)

    def stream(self, text: str) -> None:
        """Append a fragment of streamed output (model tokens) to the live log."""
        self._tracker.stream(text)

    def record_usage(self, **counts: float) -> None:
        """Add to the resources this execution used, e.g. ``prompt_tokens=12, completion_tokens=40``."""
        self._tracker.record_usage(**counts)

    def is_cancelled(self) -> bool:
        """True once the execution was cancelled, timed out or lost: stop working."""
        return self._cancelled.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep that wakes early on cancellation; returns True if cancelled."""
        return self._cancelled.wait(seconds)

    @property
    def remaining(self) -> float:
        """Seconds left before the execution's deadline."""
        return max(0.0, self.deadline - time.monotonic())

    def _cancel(self) -> None:
        self._cancelled.set()
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
