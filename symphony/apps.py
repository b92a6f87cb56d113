from django.apps import AppConfig


class SymphonyConfig(AppConfig):
    """The project package as an app: personal API tokens, the JSON API, the websockets' front door.

    It is the top layer, so it may import every app; it adds its ``symphony token``
    subcommand through the executions layer's registry, as workflows does.
    """

    name = "symphony"
    label = "symphony"
    verbose_name = "Symphony"

    def ready(self) -> None:
        from executions.cli import register_subcommand
        from symphony.cli import TokenCommand

        register_subcommand(TokenCommand())
