"""``manage.py symphony``: submit and follow executions, run the worker and dispatcher, set up an install."""

import json
import secrets
import threading

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from honcho import command as honcho_command
from honcho import manager as honcho_manager

from executions import access, cli
from executions.agent_activity import task_router
from executions.cluster import WorkerCluster, stop_bound
from executions.dispatcher import run_dispatcher
from executions.ids import is_row_id
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.services import SubmitError, execution_cancel, execution_retry, execution_submit
from executions.state import TransitionError
from executions.stop_signals import on_stop_signal
from executions.validation import clean_text
from routing import evaluation
from routing.decisions import NO_INPUT, RouteRequest, RoutingStrategy, query_text
from routing.models import AgentConfig
from routing.services import demo_agents_load


class Command(BaseCommand):
    help = "Symphony: submit, follow, cancel and retry executions; run the dispatcher; set up an install."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="subcommand", required=True)
        submit = commands.add_parser("submit", help="Submit a task to an agent.")
        submit.add_argument("--agent", help="Agent name; omit it to let the router choose.")
        submit.add_argument("--input", default="{}", help="Task input as JSON.")
        submit.add_argument("--tags", default="", help="Comma-separated task tags (for capability matching).")
        submit.add_argument("--strategy", choices=RoutingStrategy.values, help="Routing strategy when no agent.")
        submit.add_argument("--priority", type=int, default=0, help="Higher runs first (default 0).")
        submit.add_argument("--name", help="Task name (default: '<agent> task').")
        submit.add_argument("--timeout", type=float, help="Seconds before the execution times out.")
        submit.add_argument("--max-attempts", type=int, help="Attempts before giving up (default: site setting).")
        submit.add_argument("--wait", action="store_true", help="Follow it to the end; non-zero exit on failure.")
        submit.add_argument("--as", dest="as_user", help="Submit it for this user (it is theirs to see and act on).")
        followers = (
            ("wait", "Follow an execution until it ends."),
            ("cancel", "Cancel an execution."),
            ("retry", "Retry a failed execution."),
        )
        for name, text in followers:
            sub = commands.add_parser(name, help=text)
            sub.add_argument("execution_id", type=int)
            sub.add_argument("--as", dest="as_user", help="Act for this user: only on what they may see.")
            if name == "retry":
                sub.add_argument("--wait", action="store_true")
        route = commands.add_parser("route", help="Show how a task would be routed.")
        route.add_argument("--input", default="{}", help="Task input as JSON (its query is what is matched).")
        route.add_argument("--query", help="The task's query (instead of --input).")
        route.add_argument("--tags", default="", help="Comma-separated task tags.")
        route.add_argument("--strategy", choices=RoutingStrategy.values, help="Default: SYMPHONY_ROUTING_STRATEGY.")
        route.add_argument(
            "--dry-run", action="store_true", help="Only show the decision (the default: route never runs anything)."
        )
        route.add_argument(
            "--evaluate",
            metavar="FILE",
            help="Score content match on a labelled file (JSON Lines, JSON array or CSV of task,agent; "
            "agent null or empty: nothing should take it): accuracy, confusion, nothing-fits precision/recall.",
        )
        route.add_argument("--json", dest="as_json", action="store_true", help="With --evaluate: the report as JSON.")
        commands.add_parser("worker", help="Run a worker cluster; SIGTERM or Ctrl-C stops it gracefully.")
        commands.add_parser("dispatcher", help="Run the dispatcher loop (lease reaping, waking workers).")
        run = commands.add_parser("run", help="Run the Procfile (web, worker, dispatcher) until Ctrl-C.")
        run.add_argument("--port", type=int, default=8000, help="The web process's port (default 8000).")
        commands.add_parser("load-demo", help="Create or refresh the built-in demo agents and workflows.")
        commands.add_parser("ensure-admin", help="Make sure an 'admin' superuser exists.")
        for extension in cli.SUBCOMMANDS.values():
            extension.add_arguments(commands.add_parser(extension.name, help=extension.help))

    def handle(self, *args, subcommand, **options):
        if subcommand in cli.SUBCOMMANDS:
            cli.SUBCOMMANDS[subcommand].handle(self, **options)
            return
        getattr(self, "handle_" + subcommand.replace("-", "_"))(**options)

    def handle_submit(self, *, agent, input, name, tags, strategy, priority, timeout, max_attempts, wait, as_user, **_):
        by = cli.acting_user(as_user)
        try:
            execution = execution_submit(
                agent=_agent(agent),
                input_data=_json_option(input),
                name=name,
                tags=_tags(tags),
                strategy=strategy,
                priority=priority,
                timeout=timeout,
                max_attempts=max_attempts,
                submitted_by=by,
            )
        except SubmitError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(str(execution.pk))
        if execution.routing:
            self.stderr.write(f"routed to {execution.agent.name}: {execution.routing['reason']}")
        if wait:
            self._follow(execution.pk)

    def handle_route(self, *, input, query, tags, strategy, evaluate, as_json, **_):
        if evaluate:
            self._evaluate(evaluate, as_json=as_json)
            return
        data = NO_INPUT if query else _json_option(input)  # a query alone checks no input schema
        request = RouteRequest(query=query or query_text(data), tags=tuple(_tags(tags)), input=data)
        try:
            decision = task_router().decide(request, strategy=strategy, dry_run=True)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(cli.decision_text(decision))
        if decision.chosen is None:
            raise SystemExit(1)

    def _evaluate(self, path: str, *, as_json: bool) -> None:
        try:
            with open(path, encoding="utf-8") as labelled:
                rows = evaluation.parse_labelled(labelled.read())
        except (OSError, UnicodeDecodeError, evaluation.LabelledFileError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        report = evaluation.evaluate(rows, task_router())
        self.stdout.write(json.dumps(report.as_dict(), indent=2) if as_json else evaluation.report_text(report))

    def handle_wait(self, *, execution_id, as_user, **_):
        self._get(execution_id, cli.acting_user(as_user))
        self._follow(execution_id)

    def handle_cancel(self, *, execution_id, as_user, **_):
        by = cli.acting_user(as_user)
        try:
            execution = execution_cancel(execution=self._get(execution_id, by), by=by, reason="cancelled from the CLI")
        except TransitionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{execution.pk} {execution.state}")

    def handle_retry(self, *, execution_id, wait, as_user, **_):
        by = cli.acting_user(as_user)
        try:
            execution = execution_retry(execution=self._get(execution_id, by), by=by)
        except TransitionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{execution.pk} {execution.state} (attempt {execution.attempt})")
        if wait:
            self._follow(execution.pk)

    def handle_worker(self, **_):
        status = WorkerCluster().run()
        if status:
            raise SystemExit(status)

    def handle_dispatcher(self, **_):
        stop = threading.Event()
        on_stop_signal(lambda signum: stop.set())
        run_dispatcher(stop)

    def handle_run(self, *, port, **_):
        # honcho SIGKILLs what still runs 5 s after its SIGTERM (a module constant, no option);
        # a worker cluster may take stop_bound() to give running executions their grace, and
        # kills its own leftovers then: wait a little longer, so it always gets to.
        honcho_manager.KILL_WAIT = stop_bound() + 3
        honcho_command.main(["start", "--port", str(port)])

    def handle_load_demo(self, **_):
        names = [config.name for config in demo_agents_load()]
        self.stdout.write(f"Demo agents ready: {', '.join(names)}")
        for loader in cli.DEMO_LOADERS:
            self.stdout.write(loader())

    def handle_ensure_admin(self, **_):
        User = get_user_model()
        password = settings.SYMPHONY_ADMIN_PASSWORD
        user = User.objects.filter(username="admin").first()
        if user is not None:
            if password and not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write("Admin user 'admin': password set from SYMPHONY_ADMIN_PASSWORD.")
            else:
                self.stdout.write("Admin user 'admin' exists.")
            return
        generated = not password
        password = password or secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "", password)
        if generated:
            self.stdout.write(self.style.WARNING(f"Created admin user 'admin' with password: {password}"))
            self.stdout.write("Keep it: it is not shown again. Set SYMPHONY_ADMIN_PASSWORD to choose one.")
        else:
            self.stdout.write("Created admin user 'admin' (password from SYMPHONY_ADMIN_PASSWORD).")

    def _get(self, execution_id: int, user=None) -> Execution:
        """The execution, if ``user`` (when acting for one) may see it: else, as when it is missing, an error."""
        executions = Execution.objects.all() if user is None else access.executions_visible_to(user)
        execution = executions.filter(pk=execution_id).first() if is_row_id(execution_id) else None
        if execution is None:
            raise CommandError(f"No execution {execution_id}.")
        return execution

    def _follow(self, execution_id: int) -> None:
        execution = cli.follow(execution_id, out=self.stdout._out)
        if execution.state == S.COMPLETED:
            self.stdout.write(cli.outcome_text(execution))
            return
        self.stderr.write(cli.outcome_text(execution))
        raise SystemExit(1)


def _agent(name: str | None) -> AgentConfig | None:
    if not name:
        return None
    # Looked up before the service sees it: bytes that are not UTF-8 are refused as the service refuses them.
    name = clean_text(name, "--agent", max_chars=AgentConfig._meta.get_field("name").max_length)
    config = AgentConfig.objects.filter(name=name).first()
    if config is None:
        known = ", ".join(AgentConfig.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"No agent named {name!r} (known: {known}).")
    return config


def _json_option(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--input is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise CommandError(f"--input is nested more than {settings.SYMPHONY_MAX_JSON_DEPTH} levels deep.") from exc
    except ValueError as exc:  # Python reads no integer of more than sys.get_int_max_str_digits() digits
        raise CommandError("--input holds a number with too many digits to read.") from exc


def _tags(text: str) -> list[str]:
    return [tag.strip() for tag in text.split(",") if tag.strip()]
