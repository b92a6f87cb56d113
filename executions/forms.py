"""The submit form on the executions page: it reads what a person typed, the service decides.

Its bounds repeat the service's for a message next to the field; the service's
checks (``executions/validation.py``) are the ones that hold.
"""

import json

from django import forms
from django.conf import settings

from executions import selectors
from executions.validation import SubmitError
from routing.decisions import RoutingStrategy


class ExecutionSubmitForm(forms.Form):
    agent = forms.ModelChoiceField(
        queryset=selectors.agents_enabled(),
        required=False,
        empty_label="auto (let the router choose)",
        to_field_name="name",
    )
    strategy = forms.ChoiceField(
        label="Routing strategy",
        choices=[("", "site default"), *RoutingStrategy.choices],
        required=False,
        help_text="How the router chooses when the agent is auto.",
    )
    input = forms.CharField(
        label="Input (JSON)",
        initial="{}",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "code"}),
    )
    name = forms.CharField(max_length=200, required=False, help_text="Optional; defaults to the agent's name.")
    priority = forms.IntegerField(
        initial=0,
        required=False,
        min_value=settings.SYMPHONY_MIN_PRIORITY,
        max_value=settings.SYMPHONY_MAX_PRIORITY,
        help_text="Higher runs first.",
    )
    timeout = forms.FloatField(
        label="Timeout (seconds)",
        required=False,
        min_value=0.1,
        max_value=settings.SYMPHONY_MAX_TIMEOUT,
        help_text="Empty for the agent's default.",
    )
    max_attempts = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.SYMPHONY_MAX_ATTEMPTS_LIMIT,
        help_text="Empty for the site default.",
    )

    def clean_input(self):
        text = self.cleaned_data["input"].strip()
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"The input is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from exc
        except RecursionError as exc:
            raise forms.ValidationError(
                f"The input is nested more than {settings.SYMPHONY_MAX_JSON_DEPTH} levels deep."
            ) from exc
        except ValueError as exc:  # Python reads no integer of more than sys.get_int_max_str_digits() digits
            raise forms.ValidationError("The input holds a number with too many digits to read.") from exc

    def add_refusal(self, refusal: SubmitError) -> None:
        """Show the service's refusal next to the field it names, else above the form."""
        self.add_error(refusal.field if refusal.field in self.fields else None, str(refusal))

    def submit_kwargs(self) -> dict:
        """The cleaned values as ``execution_submit`` keywords; empty fields leave the service's defaults."""
        data = self.cleaned_data
        return {
            "agent": data["agent"],
            "input_data": data["input"],
            "name": data["name"] or None,
            "priority": data["priority"],
            "timeout": data["timeout"],
            "max_attempts": data["max_attempts"],
            "strategy": data["strategy"] or None,
        }


class ExecutionRerunForm(forms.Form):
    """Run a finished execution again: its input, as JSON, prefilled and editable."""

    input = forms.CharField(
        label="Input (JSON)",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
    )

    # Read and refused exactly as the submit form's input is.
    clean_input = ExecutionSubmitForm.clean_input
    add_refusal = ExecutionSubmitForm.add_refusal
