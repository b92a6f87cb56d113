"""The submit form on the executions page: it validates what a person typed, the service decides."""

import json

from django import forms

from executions import selectors
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
    priority = forms.IntegerField(initial=0, required=False, help_text="Higher runs first.")
    timeout = forms.FloatField(
        label="Timeout (seconds)",
        required=False,
        min_value=0.1,
        help_text="Empty for the agent's default.",
    )
    max_attempts = forms.IntegerField(
        required=False, min_value=1, max_value=100, help_text="Empty for the site default."
    )

    def clean_input(self):
        text = self.cleaned_data["input"].strip()
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"The input is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from exc

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
