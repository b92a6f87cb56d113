"""The seed's usage examples, as written, from a Python process against a running install:
its agents run on the worker processes, and a batch's limit holds across two worker clusters."""

import json
import subprocess

import pytest

from tests.process.conftest import PYTHON, ROOT, wait_until
from tests.process.gates import most_at_once, overlapping_runs

pytestmark = pytest.mark.process

RUN_EXAMPLES = """
import asyncio, json
from tests import seed_examples

async def main():
    workflow, task, record = await seed_examples.basic_workflow()
    agent, routed = await seed_examples.task_routing(task)
    task_ids, records = await seed_examples.batch_execution(workflow)
    status = await seed_examples.ServiceRegistry.get_instance().get_workflow_tracker().sync_workflow_status(workflow.id)
    print(json.dumps({"basic": [record.status, record.output["words"]], "routed": [agent.name, routed.status],
                      "batch": [r.status for r in records], "workflow": status}))

asyncio.run(main())
"""

GATED_BATCH = """
import asyncio, json
from routing.models import AgentConfig
from symphony.registry import ServiceRegistry

async def main():
    registry = ServiceRegistry.get_instance()
    config, _ = await AgentConfig.objects.aupdate_or_create(
        name="gated", defaults={{"settings": {{"path": "tests.agents.waits_for_gate"}}}}
    )
    agent = await registry.get_agent_factory().create_agent(config.id)
    manager = registry.get_task_manager()
    tasks = [await manager.create_task(name=f"gated {{n}}", input_data={{"gate": {gate!r}, "marks": {marks!r}}})
             for n in range(10)]
    records = await registry.get_enhanced_executor().batch_execute([(t.id, agent) for t in tasks], max_concurrent=3)
    print(json.dumps([[r.execution_id, r.status] for r in records]))

asyncio.run(main())
"""


def test_the_seeds_examples_run_as_written_against_worker_processes(symphony):
    symphony.start_dispatcher()
    symphony.start_worker()
    result = symphony.manage("shell", "-c", RUN_EXAMPLES, timeout=180)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "basic": ["COMPLETED", 3],
        "routed": ["text-stats", "COMPLETED"],
        "batch": ["COMPLETED"] * 5,
        "workflow": "COMPLETED",
    }


def test_a_batch_never_runs_more_than_max_concurrent_across_two_worker_clusters(symphony, tmp_path):
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    symphony.start_dispatcher()
    clusters = [symphony.start_worker(), symphony.start_worker()]  # 2 clusters x 2 workers
    caller = subprocess.Popen(
        [PYTHON, "manage.py", "shell", "-c", GATED_BATCH.format(gate=str(gate), marks=str(marks))],
        cwd=ROOT, env=symphony.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        running = "SELECT COUNT(*) FROM executions_execution WHERE state = 'RUNNING'"
        wait_until(lambda: symphony.db.value(running) == 3, timeout=90, what="3 of the batch running",
                   alive=lambda: symphony.expect_running(*clusters))  # fmt: skip
        gate.touch()
        out, err = caller.communicate(timeout=180)
    finally:
        if caller.poll() is None:
            caller.kill()
    assert caller.returncode == 0, err
    records = json.loads(out.strip().splitlines()[-1])
    assert [status for _, status in records] == ["COMPLETED"] * 10
    assert most_at_once(symphony.db, [pk for pk, _ in records]) == 3
    assert overlapping_runs(marks) == {}
