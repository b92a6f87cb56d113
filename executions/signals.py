"""Signals and hooks for the layers above: a workflow learns that an execution ended without executions importing it."""

from collections.abc import Callable

from django.dispatch import Signal

# Sent after the transaction that moved an execution to COMPLETED, FAILED,
# CANCELLED or TIMED_OUT has committed. Arguments: execution_id, state.
execution_finished = Signal()


# Called inside the transaction of a transition that changes an execution's outcome: into
# COMPLETED, FAILED, CANCELLED or TIMED_OUT, or out of FAILED (a retry). What a hook writes
# commits or rolls back with the transition itself, so a layer above (a workflow advancing
# to its next steps) never misses an end nor acts on one that did not happen. Each hook runs
# in a savepoint of its own: one that raises is logged and rolled back alone, and the
# transition still commits. A hook is called as hook(execution_id, from_state, to_state).
OutcomeHook = Callable[[int, str, str], None]
outcome_hooks: list[OutcomeHook] = []


def on_outcome_changed(hook: OutcomeHook) -> OutcomeHook:
    """Register ``hook`` (once, usually from an AppConfig.ready); returns it, so it can decorate."""
    if hook not in outcome_hooks:
        outcome_hooks.append(hook)
    return hook


# Called by every dispatcher pass, after lease reaping: time-based work of the layers above
# (a workflow run left between steps by a crash). Each returns how many things it repaired.
DispatchPass = Callable[[], int]
dispatch_passes: list[DispatchPass] = []


def on_dispatch(task: DispatchPass) -> DispatchPass:
    if task not in dispatch_passes:
        dispatch_passes.append(task)
    return task
