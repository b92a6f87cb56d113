"""The routing evaluation page: paste or upload a labelled file, see how the router does on it.

For operators (it ranks tasks over every enabled agent with what the router
learned from everyone's work). The report is ``routing.evaluation``'s, the one
``symphony route --evaluate`` prints; this page only reads the file and lays the
report out. Nothing is stored: a labelled file is evaluated and forgotten.
"""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods

from executions import access, presenters
from executions.agent_activity import task_router
from routing.evaluation import NOTHING, LabelledFileError, Report, evaluate, parse_labelled

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 1000  # a page answers within about 20 s; the CLI takes up to routing.evaluation.MAX_ROWS


class LabelledFileForm(forms.Form):
    text = forms.CharField(required=False, strip=False, max_length=MAX_BYTES, widget=forms.Textarea)
    file = forms.FileField(required=False)

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > MAX_BYTES:
                raise forms.ValidationError(f"The file is {upload.size} bytes; upload at most 2 MB.")
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        else:
            text = data.get("text") or ""
        if not text.strip():
            raise forms.ValidationError("Paste a labelled file or upload one.")
        try:
            data["rows"] = parse_labelled(text)
        except LabelledFileError as exc:
            raise forms.ValidationError(str(exc)) from None
        if len(data["rows"]) > MAX_ROWS:
            raise forms.ValidationError(
                f"The file holds {len(data['rows'])} tasks; this page takes {MAX_ROWS} (each is embedded, "
                "10-20 ms): run `manage.py symphony route --evaluate FILE` for more."
            )
        return data


def _confusion(report: Report) -> tuple[list[str], list[tuple[str, list[int | str]]]]:
    """Column labels and (expected, counts per chosen) rows, zeros left blank so the mistakes stand out."""
    labels, counts = report.confusion()
    return labels, [(label, [count or "" for count in row]) for label, row in zip(labels, counts, strict=True)]


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def routing_evaluate(request: HttpRequest) -> HttpResponse:
    if not access.is_operator(request.user):
        raise PermissionDenied("Evaluating the router ranks tasks with everyone's history: it is for operators.")
    if request.method != "POST":
        return _render(request, {"form": LabelledFileForm()})
    form = LabelledFileForm(request.POST, request.FILES)
    if not form.is_valid():
        return _render(request, {"form": form}, status=400)
    report = evaluate(form.cleaned_data["rows"], task_router())
    labels, matrix = _confusion(report)
    context = {"form": form, "report": report, "labels": labels, "matrix": matrix, "nothing": NOTHING}
    return _render(request, context)


def _render(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(presenters.render_text("executions/routing_evaluate.html", context, request), status=status)
