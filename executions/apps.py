from django.apps import AppConfig
from django.urls import register_converter

from executions.ids import RowIdConverter


class ExecutionsConfig(AppConfig):
    name = "executions"

    def ready(self):
        # Here rather than in urls.py: the websocket routes use it too, and ready() runs once per process.
        register_converter(RowIdConverter, "row_id")
