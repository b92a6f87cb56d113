import pytest

from executions.worker import drain
from workflows.services import workflow_definition_save


@pytest.fixture
def work_off(db):
    """Run every ready execution in this process, as workers would, until nothing is ready."""

    def work():
        ran = 0
        while (done := drain(budget=60).ran) > 0:
            ran += done
        return ran

    return work


@pytest.fixture
def define(make_agent):
    """Store a definition (agents ``echo`` and ``boom`` from tests.agents exist)."""
    make_agent("echo")
    make_agent("boom")

    def save(steps, name="wf", **fields):
        return workflow_definition_save(source={"name": name, "steps": steps, **fields})

    return save
