"""JSON the admin shows to people: indented, with multi-line text (a traceback) shown as lines.

Django's admin shows a JSONField on one line (``{"a": 1, "traceback": "...\\n..."}``),
with the escapes of every newline: unreadable for an error or a routing decision.
"""

import json
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

STYLE = "white-space: pre-wrap; overflow-wrap: anywhere; max-height: 32em; overflow: auto; margin: 0"


def pretty_json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def pretty_json_html(value: Any) -> SafeString | str:
    """``value`` as indented JSON in a ``<pre>``; each top-level text that spans lines follows it as lines."""
    if value is None:
        return "-"
    lines = {}
    if isinstance(value, dict):
        lines = {key: text for key, text in value.items() if isinstance(text, str) and "\n" in text}
        value = {key: ("(below)" if key in lines else item) for key, item in value.items()}
    html = format_html('<pre class="pretty-json" style="{}">{}</pre>', STYLE, pretty_json_text(value))
    if lines:
        html += format_html_join(
            "",
            '<p><strong>{}</strong></p><pre style="{}">{}</pre>',
            ((key, STYLE, text) for key, text in lines.items()),
        )
    return html


class PrettyJSONField(forms.JSONField):
    """An editable JSONField shown indented, so a schema or settings can be read and changed."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return pretty_json_text(value)


def pretty_json_overrides(rows: int = 8) -> dict:
    """``formfield_overrides`` for a ModelAdmin: every JSONField edited as indented JSON."""
    from django.db import models

    return {
        models.JSONField: {
            "form_class": PrettyJSONField,
            "widget": forms.Textarea(
                attrs={"rows": rows, "cols": 80, "spellcheck": "false", "class": "vLargeTextField"}
            ),
        }
    }
