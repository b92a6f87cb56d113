"""``manage.py symphony workflow ...``: save, run, follow and control workflow runs from a terminal.

symphony workflow run workflows/definitions/demo.yaml --input '{"text": "..."}' --wait
symphony workflow approve 12 review --as alice --comment "ship it"
"""

import json
import sys
import time
from pathlib import Path

from django.core.management.base import CommandError
from django.http import Http404

from executions.cli import Subcommand, acting_user
from executions.ids import is_row_id
from executions.validation import SubmitError
from workflows import access, services
from workflows.models import RUN_FINISHED, StepRun, WorkflowRun, WorkflowStatus
from workflows.services import WorkflowError
from workflows.spec import SpecError

DEMO_DEFINITION = Path(__file__).resolve().parent / "definitions" / "demo.yaml"


def load_demo_workflow() -> str:
    version = services.workflow_definition_save(source=DEMO_DEFINITION.read_text())
    return f"Demo workflow ready: {version.definition.name} (version {version.number})"


def _json(text: str, option: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise CommandError(f"{option} is not valid JSON: {exc}") from None


def _run(run_id: int, user=None, *, step_id: str | None = None) -> WorkflowRun:
    """The run; acting for ``user``, only one they may see (or, to decide ``step_id``, one whose
    step names them): any other is reported missing, like one that is."""
    run = None
    if is_row_id(run_id):
        if user is None:
            run = WorkflowRun.objects.filter(pk=run_id).first()
        else:
            try:
                run = access.run_to_decide(user, run_id, step_id) if step_id else access.run_for(user, run_id)
            except Http404:
                pass
    if run is None:
        raise CommandError(f"No workflow run {run_id}.")
    return run


def step_lines(run: WorkflowRun) -> list[str]:
    """One line per step: its state, and for a map step how many items ended."""
    rows: dict[str, list[StepRun]] = {}
    for row in StepRun.objects.filter(run=run, superseded=False).order_by("id"):
        rows.setdefault(row.step_id, []).append(row)
    lines = []
    for step_id, items in rows.items():
        last = max(items, key=lambda row: (row.iteration, row.index))
        detail = ""
        if len(items) > 1 and any(row.index for row in items):
            ended = sum(row.state in ("COMPLETED", "FAILED", "SKIPPED", "CANCELLED") for row in items)
            detail = f" ({ended}/{len(items)} items)"
        elif last.iteration > 1:
            detail = f" (iteration {last.iteration})"
        lines.append(f"  {step_id:<24} {last.state}{detail}")
    return lines


def follow(run: WorkflowRun, out, interval: float = 0.3) -> WorkflowRun:
    """Print the run's status and steps whenever they change, until it ends or waits for a person."""
    shown = None
    while True:
        run.refresh_from_db()
        total = len(run.version.spec["steps"]) if run.version_id else StepRun.objects.filter(run=run).count()
        screen = [f"run {run.pk} {run.status}: {run.steps_ended}/{total} steps ended", *step_lines(run)]
        if screen != shown:
            out.write("\n".join(screen) + "\n")
            out.flush()
            shown = screen
        if run.status in RUN_FINISHED:
            return run
        time.sleep(interval)


class WorkflowCommand(Subcommand):
    name = "workflow"
    help = "Save, run, follow and control workflows."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        save = actions.add_parser("save", help="Validate a definition file (JSON or YAML) and store it.")
        save.add_argument("file")
        run = actions.add_parser("run", help="Start a run of a definition file or a stored workflow's name.")
        run.add_argument("workflow", help="A definition file, or the name of a stored workflow.")
        run.add_argument("--input", default="{}", help="The run's input as JSON.")
        run.add_argument("--as", dest="as_user", help="Start it as this user.")
        run.add_argument("--wait", action="store_true", help="Follow it to the end; non-zero exit unless COMPLETED.")
        status = actions.add_parser("status", help="Show a run and its steps.")
        status.add_argument("run_id", type=int)
        status.add_argument("--as", dest="as_user", help="Only a run this user may see.")
        for name, text in (("pause", "Pause a run."), ("resume", "Resume a paused run."), ("cancel", "Cancel a run.")):
            sub = actions.add_parser(name, help=text)
            sub.add_argument("run_id", type=int)
            sub.add_argument("--as", dest="as_user", help="Act as this user.")
        for name in ("approve", "reject"):
            sub = actions.add_parser(name, help=f"{name.capitalize()} a run's waiting approval step.")
            sub.add_argument("run_id", type=int)
            sub.add_argument("step")
            sub.add_argument("--as", dest="as_user", required=True, help="The user who decides.")
            sub.add_argument("--comment", default="")
        rerun = actions.add_parser("rerun", help="Run an ended run again from a step, keeping what succeeded.")
        rerun.add_argument("run_id", type=int)
        rerun.add_argument("--from", dest="from_step", required=True)
        rerun.add_argument("--input", help="Replace the run's input (JSON).")
        rerun.add_argument("--as", dest="as_user", help="Act as this user.")
        rerun.add_argument("--wait", action="store_true")

    def handle(self, command, *, action, **options) -> None:
        try:
            getattr(self, f"do_{action}")(command, **options)
        except (WorkflowError, SubmitError) as exc:
            raise CommandError(str(exc)) from None
        except SpecError as exc:
            raise CommandError(f"The definition is not valid:\n{exc}") from None

    def do_save(self, command, *, file, **_) -> None:
        version = services.workflow_definition_save(source=self._read(file))
        command.stdout.write(f"{version.definition.name} version {version.number}")

    def do_run(self, command, *, workflow, input, as_user, wait, **_) -> None:
        by = acting_user(as_user)
        definition = workflow
        if Path(workflow).is_file():
            definition = services.workflow_definition_save(source=self._read(workflow), by=by).definition
        run = services.workflow_run_start(definition=definition, input=_json(input, "--input"), by=by)
        command.stdout.write(str(run.pk))
        if wait:
            self._wait(command, run)

    def do_status(self, command, *, run_id, as_user, **_) -> None:
        run = _run(run_id, acting_user(as_user))
        command.stdout.write(f"run {run.pk} {run.name} {run.status}")
        command.stdout.write("\n".join(step_lines(run)))

    def do_pause(self, command, *, run_id, as_user, **_) -> None:
        by = acting_user(as_user)
        self._show(command, services.workflow_run_pause(run=_run(run_id, by), by=by))

    def do_resume(self, command, *, run_id, as_user, **_) -> None:
        by = acting_user(as_user)
        self._show(command, services.workflow_run_resume(run=_run(run_id, by), by=by))

    def do_cancel(self, command, *, run_id, as_user, **_) -> None:
        by = acting_user(as_user)
        self._show(command, services.workflow_run_cancel(run=_run(run_id, by), by=by))

    def do_approve(self, command, *, run_id, step, as_user, comment, **_) -> None:
        by = acting_user(as_user)
        run = services.workflow_step_approve(run=_run(run_id, by, step_id=step), step_id=step, by=by, comment=comment)
        self._show(command, run)

    def do_reject(self, command, *, run_id, step, as_user, comment, **_) -> None:
        by = acting_user(as_user)
        run = services.workflow_step_reject(run=_run(run_id, by, step_id=step), step_id=step, by=by, comment=comment)
        self._show(command, run)

    def do_rerun(self, command, *, run_id, from_step, input, as_user, wait, **_) -> None:
        new_input = _json(input, "--input") if input is not None else None
        by = acting_user(as_user)
        run = services.workflow_run_rerun(run=_run(run_id, by), from_step=from_step, input=new_input, by=by)
        self._show(command, run)
        if wait:
            self._wait(command, run)

    def _read(self, file: str) -> str:
        try:
            return Path(file).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None

    def _show(self, command, run: WorkflowRun) -> None:
        command.stdout.write(f"{run.pk} {run.status}")

    def _wait(self, command, run: WorkflowRun) -> None:
        run = follow(run, command.stdout._out)
        if run.status == WorkflowStatus.COMPLETED:
            command.stdout.write(json.dumps(run.output, indent=2, ensure_ascii=False))
            return
        command.stderr.write(f"{run.status}: {json.dumps(run.error, ensure_ascii=False)}")
        sys.exit(1)
