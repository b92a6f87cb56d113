"""The layers hold: imports go only downward, and only the state and service modules write an execution's state.

The state check reads the source (``ast``), so it also sees code no test runs. It
looks for database writes only: a ``state`` set on an object that is never saved
in that function (``claims.claim`` refreshing its in-memory copy after the
transition wrote the row) is not one.
"""

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("symphony", "workflows", "executions", "routing")

# Who may write Execution.state, and what each may do.
STATE_WRITERS = {
    "executions/state.py": {"update"},  # transition(): the compare-and-set, with its event row
    "executions/services.py": {"create"},  # a new execution's first state, nothing after
}

WRITING_CALLS = {"update", "update_or_create", "get_or_create"}
SQL_STATE_UPDATE = re.compile(r"\bUPDATE\b.*?\bSET\b.*?\bstate\s*=", re.IGNORECASE | re.DOTALL)


def test_imports_go_only_downward():
    # In a fresh interpreter: twisted's zope.interface, loaded here by daphne, trips import-linter's class scan.
    lint = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    result = subprocess.run([sys.executable, "-c", lint], cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def _names_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == "state"


def _keyword_writes(call: ast.Call) -> bool:
    """``state=...`` as an argument, or a ``"state"`` key of ``defaults=``/``create_defaults=``."""
    for keyword in call.keywords:
        if keyword.arg == "state":
            return True
        if keyword.arg in {"defaults", "create_defaults"} and isinstance(keyword.value, ast.Dict):
            if any(_names_state(key) for key in keyword.value.keys):
                return True
    return False


def _lists_state(node: ast.AST) -> bool:
    return isinstance(node, (ast.List, ast.Tuple, ast.Set)) and any(_names_state(item) for item in node.elts)


def _call_writes(call: ast.Call) -> str | None:
    function = call.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    if name in WRITING_CALLS and _keyword_writes(call):
        return "update" if name.startswith("update") else "create"
    if name in {"create", "Execution"} and _keyword_writes(call):
        return "create"  # Model.objects.create(state=...), or Execution(state=...) for bulk_create
    if name == "bulk_update" and any(_lists_state(arg) for arg in [*call.args[1:], *(k.value for k in call.keywords)]):
        return "update"
    if name == "save" and any(k.arg == "update_fields" and _lists_state(k.value) for k in call.keywords):
        return "update"
    if name == "setattr" and len(call.args) >= 2 and _names_state(call.args[1]):
        return "update"
    return None


def _assigned_state_owners(function: ast.AST) -> Iterator[tuple[int, str]]:
    """``<name>.state = ...`` (plain, tuple or augmented assignment) in this function: (line, name)."""
    for node in ast.walk(function):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            for item in target.elts if isinstance(target, ast.Tuple) else [target]:
                if isinstance(item, ast.Attribute) and item.attr == "state" and isinstance(item.value, ast.Name):
                    yield node.lineno, item.value.id


def _saved_names(function: ast.AST) -> set[str]:
    return {
        node.func.value.id
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "save"
        and isinstance(node.func.value, ast.Name)
    }


def state_writes(source: str) -> list[tuple[int, str]]:
    """Every database write of an execution's state in ``source``: (line, "update" or "create")."""
    tree = ast.parse(source)
    writes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (kind := _call_writes(node)):
            writes.append((node.lineno, kind))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_STATE_UPDATE.search(node.value):
            writes.append((node.lineno, "update"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            saved = _saved_names(node)
            writes.extend((line, "update") for line, owner in _assigned_state_owners(node) if owner in saved)
    return sorted(set(writes))


def app_sources() -> Iterator[tuple[str, str]]:
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in relative:
                yield relative, path.read_text()


def test_only_the_state_and_service_modules_write_an_executions_state():
    writes = {path: state_writes(source) for path, source in app_sources()}
    strays = {path: found for path, found in writes.items() if found and path not in STATE_WRITERS}

    assert strays == {}, "write the state through executions.state.transition() (or a service that calls it)"
    for path, allowed in STATE_WRITERS.items():
        kinds = {kind for _, kind in writes[path]}
        assert kinds and kinds <= allowed, f"{path} writes the state as {sorted(kinds)}; only {sorted(allowed)}"


@pytest.mark.parametrize(
    "source",
    [
        "Execution.objects.filter(pk=1).update(state='queued')",
        "Execution.objects.update_or_create(pk=1, defaults={'state': 'queued'})",
        "Execution.objects.bulk_update(rows, ['state', 'progress'])",
        "execution.save(update_fields=['state'])",
        "setattr(execution, 'state', 'failed')",
        "cursor.execute('UPDATE executions_execution SET progress = 1, state = %s WHERE id = %s', params)",
        "def f(execution):\n    execution.state = 'failed'\n    execution.save()",
        "def f(execution):\n    execution.state, execution.error = 'failed', {}\n    execution.save()",
    ],
)
def test_the_scan_finds_each_way_of_updating_the_state(source):
    assert [kind for _, kind in state_writes(source)] == ["update"]


@pytest.mark.parametrize(
    "source",
    [
        "Execution.objects.create(task=task, state='queued')",
        "Execution.objects.bulk_create([Execution(task=task, state='pending')])",
    ],
)
def test_the_scan_tells_a_new_rows_state_apart(source):
    assert [kind for _, kind in state_writes(source)] == ["create"]


@pytest.mark.parametrize(
    "source",
    [
        "Execution.objects.filter(state='queued').count()",
        "Execution.objects.filter(pk=1, state='running').update(progress=50)",
        "selectors.execution_list(state=state)",
        "cursor.execute('SELECT id FROM executions_execution x WHERE x.state = %s', params)",
        "def claim(execution):\n    execution.state, execution.lease_owner = 'preparing', 'w1'\n    return execution",
        "class Consumer:\n    def connect(self):\n        self.state = 'running'",
        "ExecutionEvent.objects.create(execution=e, from_state='queued', to_state='running')",
    ],
)
def test_the_scan_passes_reads_events_and_in_memory_copies(source):
    assert state_writes(source) == []


def test_the_scan_reads_every_app():
    paths = {path.split(os.sep)[0].split("/")[0] for path, _ in app_sources()}

    assert paths == set(APPS)
