"""Signals for the layers above: a workflow learns that an execution ended without executions importing it."""

from django.dispatch import Signal

# Sent after the transaction that moved an execution to COMPLETED, FAILED,
# CANCELLED or TIMED_OUT has committed. Arguments: execution_id, state.
execution_finished = Signal()
