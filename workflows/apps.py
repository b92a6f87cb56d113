from django.apps import AppConfig
from django.db.models.signals import post_migrate


class WorkflowsConfig(AppConfig):
    name = "workflows"

    def ready(self) -> None:
        # workflows sits above executions: it reaches down, and is reached from below only
        # through these registries (the executions layer never imports workflows).
        from executions.cli import register_demo_loader, register_subcommand
        from executions.listing import register_workflow_members
        from executions.live import register_relay_source
        from executions.signals import on_dispatch, on_outcome_changed
        from workflows.cli import WorkflowCommand, load_demo_workflow
        from workflows.engine import step_execution_changed
        from workflows.live import run_events_since
        from workflows.recovery import repair_runs
        from workflows.selectors import run_execution_ids

        on_outcome_changed(step_execution_changed)
        on_dispatch(repair_runs)
        register_subcommand(WorkflowCommand())
        register_demo_loader(load_demo_workflow)
        register_relay_source(run_events_since)
        register_workflow_members(run_execution_ids)
        post_migrate.connect(_operators_group, sender=self)


def _operators_group(sender, using="default", **kwargs) -> None:
    from executions.access import grant_to_operators

    grant_to_operators([("workflows", "operate_runs")])
