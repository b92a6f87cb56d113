"""Every write to tasks and executions goes through here: views, the API, the admin,
the CLI, workers and the ServiceRegistry call these same functions."""

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from executions import agent_activity, live, validation, wakeups
from executions.errors import not_retried_because
from executions.models import ConcurrencyGroup, EventKind, Execution, ExecutionEvent, Task
from executions.models import ExecutionState as S
from executions.state import ACTIVE, WAITING, InvalidTransition, TransitionConflict, transition
from executions.validation import SubmitError
from routing.models import AgentConfig


def task_create(
    *,
    name: str,
    input_data: Any = None,
    description: str = "",
    tags: list[str] | None = None,
    agent: AgentConfig | None = None,
    priority: int = 0,
    routing_strategy: str = "",
    created_by=None,
) -> Task:
    return Task.objects.create(
        name=validation.clean_text(name, "name", max_chars=validation.NAME_MAX_CHARS, required=True, strip=True),
        description=validation.clean_text(description, "description", max_chars=validation.DESCRIPTION_MAX_CHARS),
        input_data=validation.clean_json({} if input_data is None else input_data, "input"),
        tags=validation.clean_tags(tags),
        agent=agent,
        priority=validation.clean_priority(priority),
        routing_strategy=validation.clean_strategy(routing_strategy),
        created_by=created_by,
    )


def concurrency_group_create(*, name: str, max_concurrent: int) -> ConcurrencyGroup:
    """A group whose executions run at most ``max_concurrent`` at once across every worker (0: no limit).

    Executions join it at submit (``execution_submit(concurrency_group=...)``).
    """
    return ConcurrencyGroup.objects.create(
        name=validation.clean_text(name, "name", max_chars=validation.NAME_MAX_CHARS, strip=True),
        max_concurrent=validation.clean_max_concurrent(max_concurrent),
    )


def _timeout_for(agent: AgentConfig, timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    return validation.clean_timeout(
        agent.default_timeout or settings.SYMPHONY_DEFAULT_TIMEOUT, f"the default_timeout of agent {agent.name!r}"
    )


def execution_submit(
    *,
    task: Task | None = None,
    agent: AgentConfig | None = None,
    input_data: Any = None,
    name: str | None = None,
    tags: list[str] | None = None,
    timeout: float | None = None,
    max_attempts: int | None = None,
    priority: int | None = None,
    metadata: dict | None = None,
    submitted_by=None,
    hold: bool = False,
    strategy: str | None = None,
    concurrency_group: ConcurrencyGroup | None = None,
    rerun_of: Execution | None = None,
) -> Execution:
    """Create an execution of ``task`` (or of a new task made from ``input_data``) and queue it.

    With no agent given and none named by the task, the router chooses one
    (``strategy``, else the task's, else the site default) and its decision is
    stored with the execution. ``hold=True`` leaves it PENDING for a caller
    that releases it later with ``execution_release``. In a ``concurrency_group``
    it waits, QUEUED, while the group has ``max_concurrent`` running. An input
    that does not fit the agent's input schema is an ``InputRefused`` (a
    ``SubmitError`` on ``input``) and nothing is stored.
    """
    agent = agent or (task.agent if task else None)
    if agent is not None and not agent.enabled:
        raise SubmitError(f"Agent {agent.name!r} is disabled.")
    max_attempts = validation.clean_max_attempts(
        settings.SYMPHONY_DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts
    )
    priority = None if priority is None else validation.clean_priority(priority)
    timeout = None if timeout is None else validation.clean_timeout(timeout)
    metadata = validation.clean_json_object(metadata, "metadata")
    state = S.PENDING if hold else S.QUEUED
    if agent is None and getattr(task, "agent", None) is None:
        agent_activity.prepare_routing(strategy, task)  # embeddings made outside the submit's transaction
    with transaction.atomic():
        created = task is None
        if created:
            task = task_create(
                name=name or (f"{agent.name} task" if agent else "task"),
                input_data=input_data,
                tags=tags,
                agent=agent,
                priority=priority or 0,
                created_by=submitted_by,
            )
        routing = None
        if agent is None:
            agent, routing = agent_activity.route_submitted(task, strategy, named=bool(name) or not created)
        validation.clean_input_for(agent, task.input_data)  # a refusal rolls back the task made above
        now = timezone.now()
        execution = Execution.objects.create(
            task=task,
            agent=agent,
            state=state,
            priority=task.priority if priority is None else priority,
            max_attempts=max_attempts,
            timeout_seconds=_timeout_for(agent, timeout),
            metadata=metadata,
            routing=routing,
            concurrency_group=concurrency_group,
            submitted_by=submitted_by,
            rerun_of=rerun_of,
            queued_at=None if hold else now,
        )
        data = {
            "reason": "submitted",
            **({"by": submitted_by.get_username()} if submitted_by else {}),
            **({"routed_to": agent.name} if routing else {}),
            **({"rerun_of": rerun_of.pk} if rerun_of else {}),
        }
        event = ExecutionEvent.objects.create(
            execution=execution, kind=EventKind.STATE, from_state="", to_state=state, data=data, actor=submitted_by
        )
        live.publish_on_commit(execution.pk, event.pk)
        if not hold:
            wakeups.wake_on_commit()
    return execution


def execution_rerun(*, execution: Execution, by=None, input_data: Any = None) -> Execution:
    """Run a finished execution again as a new execution linked to it (``rerun_of``).

    Any end state will do: COMPLETED, FAILED, CANCELLED or TIMED_OUT. This is not
    ``execution_retry``, a transition of the same execution that only FAILED allows
    (the others are final); the old run is only read, never moved.

    With ``input_data`` the new run gets a task of its own with that input (the
    old task is left as it was); without, it runs the same task. The agent is
    the one the old run used, whatever routing would say now. A refused submit
    stores nothing, the new task included.
    """
    if not execution.is_finished:
        raise TransitionConflict(f"Execution {execution.pk} is {execution.state}; only a finished run can run again.")
    old = execution.task
    with transaction.atomic():
        task = old
        if input_data is not None:
            task = task_create(
                name=old.name,
                description=old.description,
                input_data=input_data,
                tags=old.tags,
                agent=old.agent,
                priority=old.priority,
                routing_strategy=old.routing_strategy,
                created_by=by,
            )
        return execution_submit(
            task=task,
            agent=execution.agent,
            timeout=execution.timeout_seconds,
            max_attempts=execution.max_attempts,
            priority=execution.priority,
            metadata=execution.metadata,
            submitted_by=by,
            rerun_of=execution,
        )


def execution_release(*, execution: Execution) -> Execution:
    """PENDING or PAUSED to QUEUED: let a held execution run."""
    with transaction.atomic():
        transition(
            execution.pk,
            S.QUEUED,
            expected=[S.PENDING, S.PAUSED],
            fields={"queued_at": timezone.now()},
            data={"reason": "released"},
        )
        wakeups.wake_on_commit()
    execution.refresh_from_db()
    return execution


def execution_cancel(*, execution: Execution, by=None, reason: str = "") -> Execution:
    """Cancel a waiting or running execution.

    The state changes at once; a running agent learns it at its next heartbeat
    (``ctx.is_cancelled()`` turns true, an async agent's task is cancelled) and
    whatever it returns afterwards is discarded.
    """
    who = getattr(by, "get_username", lambda: None)() or "system"
    with transaction.atomic():
        # Whatever cancellable state it is in when the row is read inside the transaction:
        # a claim between the page load and the click is not a conflict.
        event = transition(
            execution.pk,
            S.CANCELLED,
            expected=WAITING | ACTIVE,
            fields={"lease_owner": "", "lease_expires_at": None},
            data={"reason": reason or f"cancelled by {who}", "by": who},
            actor=by,
        )
        if event.from_state in ACTIVE:
            wakeups.wake_on_commit()  # a concurrency slot freed: an execution waiting for it may start
    execution.refresh_from_db()
    return execution


def execution_retry(*, execution: Execution, by=None) -> Execution:
    """Start a new attempt of a FAILED execution; the failed attempt stays in its history."""
    who = getattr(by, "get_username", lambda: None)() or "system"
    with transaction.atomic():
        current = (
            Execution.objects.select_for_update()
            .filter(pk=execution.pk)
            .values("state", "attempt", "max_attempts")
            .get()
        )
        if current["state"] != S.FAILED:
            # Read under the lock: no race, so none is claimed (the compare-and-set's refusal would
            # say "another actor got there first" of a run that was simply never FAILED).
            raise InvalidTransition(execution.pk, current["state"], S.QUEUED, expected=[S.FAILED])
        attempt = current["attempt"] + 1
        transition(
            execution.pk,
            S.QUEUED,
            expected=[S.FAILED],
            fields=_fresh_attempt_fields(
                attempt, max_attempts=max(current["max_attempts"], attempt), queued_at=timezone.now()
            ),
            data={"reason": f"retried by {who}", "by": who, "attempt": attempt},
            actor=by,
        )
        wakeups.wake_on_commit()
    execution.refresh_from_db()
    return execution


def _fresh_attempt_fields(attempt: int, **extra) -> dict:
    return {
        "attempt": attempt,
        "progress": 0,
        "current_step": "",
        "steps": [],
        "result": None,
        "error": None,
        "lease_owner": "",
        "lease_expires_at": None,
        "started_at": None,
        "finished_at": None,
        "not_before": None,
        "queued_at": None,
        **extra,
    }


def execution_requeue(
    *,
    execution_id: int,
    from_state: str,
    attempt: int,
    reason: str,
    error: dict | None = None,
    delay: float = 0,
    count_attempt: bool = True,
    owner: str | None = None,
    where: dict | None = None,
) -> None:
    """Put an execution that did not finish back in the queue.

    Normally as a new attempt; with ``count_attempt=False`` (the worker was
    stopped, the agent did nothing wrong) under the same attempt number. With a
    delay it is not claimed before it is due; the dispatcher wakes a worker for
    it then. ``owner`` makes it a compare-and-set on the worker's lease too,
    and ``where`` adds conditions of the caller's own.
    """
    now = timezone.now()
    not_before = now + timezone.timedelta(seconds=delay) if delay > 0 else None
    next_attempt = attempt + 1 if count_attempt else attempt
    with transaction.atomic():
        transition(
            execution_id,
            S.QUEUED,
            expected=[from_state],
            where=_same_attempt(attempt, owner, where),
            fields=_fresh_attempt_fields(next_attempt, not_before=not_before, queued_at=now),
            data={"reason": reason, "attempt": next_attempt, **({"error": error} if error else {})},
        )
        if not_before is None:
            wakeups.wake_on_commit()


# The worker's side of the lifecycle. Each is a compare-and-set on the state and on the
# worker's lease (``owner``): a worker whose lease was taken over records nothing.


def execution_start(*, execution_id: int, owner: str) -> None:
    """PREPARING to RUNNING: the agent is built and about to be called."""
    transition(
        execution_id,
        S.RUNNING,
        expected=[S.PREPARING],
        where={"lease_owner": owner},
        fields={"started_at": timezone.now()},
    )


def _same_attempt(attempt: int, owner: str | None, where: dict | None) -> dict:
    """Conditions that make a write apply to the attempt (and lease) the caller saw, not a later one."""
    return {"attempt": attempt, **({"lease_owner": owner} if owner is not None else {}), **(where or {})}


def _end_fields(**fields) -> dict:
    return {**fields, "lease_owner": "", "lease_expires_at": None}


def execution_complete(*, execution_id: int, owner: str, result: Any) -> None:
    transition(
        execution_id,
        S.COMPLETED,
        expected=[S.RUNNING],
        where={"lease_owner": owner},
        fields=_end_fields(result=result, progress=100.0),
    )


def execution_time_out(*, execution_id: int, owner: str, error: dict) -> None:
    transition(
        execution_id,
        S.TIMED_OUT,
        expected=[S.RUNNING],
        where={"lease_owner": owner},
        fields=_end_fields(error=error),
        data={"error": error},
    )


def execution_fail(
    *,
    execution_id: int,
    from_state: str,
    error: dict,
    attempt: int,
    max_attempts: int,
    owner: str | None,
    retry_after: float | None = None,
    what: str | None = None,
    where: dict | None = None,
) -> str:
    """Record a failed attempt: retried with backoff when the error is transient and attempts
    remain, else FAILED with the reason it was not retried. Returns the state it went to."""
    what = what or f"attempt {attempt} failed"
    if error.get("retryable") and attempt < max_attempts:
        delay = settings.SYMPHONY_RETRY_BACKOFF * 2 ** (attempt - 1)
        delay = max(delay, retry_after or 0)  # a rate limit says how long to wait
        execution_requeue(
            execution_id=execution_id,
            from_state=from_state,
            attempt=attempt,
            reason=f"{what}; retrying in {delay:g}s",
            error=error,
            delay=delay,
            owner=owner,
            where=where,
        )
        return S.QUEUED
    error = {**error, "retry": not_retried_because(error, attempt=attempt, max_attempts=max_attempts)}
    transition(
        execution_id,
        S.FAILED,
        expected=[from_state],
        where=_same_attempt(attempt, owner, where),
        fields=_end_fields(error=error),
        data={"reason": f"{what}; {error['retry']}", "error": error},
    )
    return S.FAILED


__all__ = [
    "SubmitError",
    "TransitionConflict",
    "concurrency_group_create",
    "execution_cancel",
    "execution_complete",
    "execution_fail",
    "execution_release",
    "execution_requeue",
    "execution_rerun",
    "execution_retry",
    "execution_start",
    "execution_submit",
    "execution_time_out",
    "task_create",
]
