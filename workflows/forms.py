"""The forms of the workflow pages: they read what a person typed; the services decide.

JSON is parsed here so that a typing slip is named next to its field; what the
value may be (size, depth, text) is the service's check.
"""

import json

from django import forms
from django.conf import settings


def parse_json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"The input is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        raise forms.ValidationError(message) from exc
    except RecursionError as exc:
        depth = settings.SYMPHONY_MAX_JSON_DEPTH
        raise forms.ValidationError(f"The input is nested more than {depth} levels deep.") from exc
    except ValueError as exc:  # Python reads no integer of more than sys.get_int_max_str_digits() digits
        raise forms.ValidationError("The input holds a number with too many digits to read.") from exc


def _json_area(rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "spellcheck": "false", "class": "code"})


class WorkflowStartForm(forms.Form):
    definition = forms.CharField(widget=forms.HiddenInput, max_length=100)
    input = forms.CharField(label="Input (JSON)", initial="{}", widget=_json_area(4))

    def clean_input(self):
        return parse_json(self.cleaned_data["input"].strip())


class RunRerunForm(forms.Form):
    from_step = forms.CharField(label="From step", max_length=100)
    input = forms.CharField(
        label="Input (JSON)",
        required=False,
        widget=_json_area(5),
        help_text="Leave as it is to keep the run's input; an edit replaces it.",
    )

    def __init__(self, *args, current_input=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.current_input = current_input

    def clean_input(self):
        text = self.cleaned_data["input"].strip()
        if not text:
            return None
        value = parse_json(text)
        return None if value == self.current_input else value


class StepDecisionForm(forms.Form):
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
