from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.urls import register_converter

from executions.ids import RowIdConverter


class ExecutionsConfig(AppConfig):
    name = "executions"

    def ready(self):
        # Here rather than in urls.py: the websocket routes use it too, and ready() runs once per process.
        register_converter(RowIdConverter, "row_id")
        post_migrate.connect(_operators_group, sender=self)


def _operators_group(sender, using="default", **kwargs) -> None:
    from executions.access import grant_to_operators

    grant_to_operators([("executions", "operate_executions"), ("routing", "add_routingcorrection")])
