"""Making a claimed execution ready to run: its agent built and RUNNING recorded.

A worker does both inside the transaction that claims the execution
(``claims.claim_many(prepare=prepare)``), so a claim and a start cost one
commit; a one-off runner does them after the claim.
"""

import logging
import traceback
from dataclasses import dataclass
from typing import Any

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.services import execution_start
from executions.state import TransitionError
from routing.factory import AGENT_OVERRIDES_KEY, AgentFactory

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """An execution made ready to run: its agent built and RUNNING recorded, or why not."""

    agent: Any = None
    error: BaseException | None = None
    traceback: str = ""
    started: bool = False


def build_agent(execution: Execution) -> Prepared:
    try:
        agent = AgentFactory().build(execution.agent, overrides=execution.metadata.get(AGENT_OVERRIDES_KEY))
    except Exception as exc:
        return Prepared(error=exc, traceback=traceback.format_exc())
    return Prepared(agent=agent)


def prepare(execution: Execution) -> Prepared:
    """Build the agent and record RUNNING, inside the transaction that claimed the execution.

    Building touches no database; an agent that cannot be built is left PREPARING
    and its failure recorded by the runner, as before a separate start.
    """
    prepared = build_agent(execution)
    if prepared.error is None:
        try:
            execution_start(execution_id=execution.pk, owner=execution.lease_owner)
        except TransitionError as exc:
            logger.warning("Execution %s not started: %s", execution.pk, exc)
            return prepared
        execution.state_written(S.RUNNING)
        prepared.started = True
    return prepared
