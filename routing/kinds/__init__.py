"""Agent kinds that call a remote service: ``llm`` (OpenAI-compatible chat) and ``http``.

The factory in ``routing.factory`` wires them up; this package stays free of Django models.
"""

from routing.kinds.validation import validate_kind_settings

__all__ = ["validate_kind_settings"]
