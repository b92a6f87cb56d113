from django import forms

from symphony.tokens import MAX_EXPIRES_DAYS, NAME_MAX_CHARS


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_MAX_CHARS,
        required=False,
        help_text="What it is for, e.g. “CI” or “laptop script”.",
    )
    expires_days = forms.IntegerField(
        label="Expires in (days)",
        required=False,
        min_value=1,
        max_value=MAX_EXPIRES_DAYS,
        help_text="Leave empty for a token that does not expire.",
    )
