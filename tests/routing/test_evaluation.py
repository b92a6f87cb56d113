"""Routing evaluation on a labelled file: parsing with clear errors, the report's figures, the CLI."""

import json

import pytest
from django.core.management import CommandError, call_command

from executions.agent_activity import task_router
from routing.evaluation import NOTHING, LabelledFileError, evaluate, parse_labelled
from tests.routing.test_semantic import team  # noqa: F401 - the fixture

ROWS = [
    {"task": "Give me the Korean version of this welcome message", "agent": "translator"},
    {"task": "Why is this join on the orders table so slow?", "agent": "sql-analyst"},
    {"task": "Boil down this forty page report to a paragraph", "agent": "summariser"},
    {"task": "What temperature should I bake a chocolate cake at?", "agent": None},
    {"task": "Look over my pull request for naming problems", "agent": "translator"},  # labelled wrong on purpose
]


def test_the_three_formats_read_the_same():
    jsonl = "\n".join(json.dumps(row) for row in ROWS)
    array = json.dumps(ROWS)
    csv = "task,agent\n" + "\n".join(f'"{r["task"]}",{r["agent"] or ""}' for r in ROWS)

    expected = [(r["task"], r["agent"]) for r in ROWS]
    assert parse_labelled(jsonl) == parse_labelled(array) == parse_labelled(csv) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ('{"task": "a", "agent": "x"}\n{"task": "b"', "line 2: not valid JSON"),
        ('{"task": "a"}', "line 1: 'agent' is missing"),
        ('[{"task": "", "agent": null}]', "item 1: 'task' must be non-empty text"),
        ('[{"task": "a", "agent": 3}]', "'agent' must be an agent's name or null"),
        ("query,label\nx,y", "header row with the columns task and agent"),
        ("[1]", "item 1: expected an object"),
    ],
)
def test_a_bad_file_is_refused_saying_where(text, message):
    with pytest.raises(LabelledFileError, match=message):
        parse_labelled(text)


def test_the_report_counts_accuracy_confusion_and_nothing_fits(team):  # noqa: F811
    report = evaluate([(r["task"], r["agent"]) for r in ROWS], task_router())

    assert [row.chosen for row in report.rows] == ["translator", "sql-analyst", "summariser", None, "code-reviewer"]
    assert report.accuracy == 4 / 5
    assert report.ranking_accuracy == 3 / 4
    assert report.nothing_fits_precision == 1.0 and report.nothing_fits_recall == 1.0
    assert report.in_scope_refused == 0.0
    labels, counts = report.confusion()
    assert labels[-1] == NOTHING
    assert counts[labels.index("translator")][labels.index("code-reviewer")] == 1
    assert counts[labels.index(NOTHING)][labels.index(NOTHING)] == 1
    assert [m.task for m in report.mistakes()] == [ROWS[4]["task"]]
    assert 0 < report.calibrated_threshold <= min(row.score for row in report.rows[:3])


def test_symphony_route_evaluate_prints_the_report(team, tmp_path, capsys):  # noqa: F811
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("\n".join(json.dumps(row) for row in ROWS + [{"task": "hola", "agent": "nobody"}]))

    call_command("symphony", "route", "--evaluate", str(labelled))
    text = capsys.readouterr().out
    call_command("symphony", "route", "--evaluate", str(labelled), "--json")
    report = json.loads(capsys.readouterr().out)

    assert "6 tasks (5 in scope, 1 for nothing) over 4 enabled agents" in text
    assert "labels naming no enabled agent: nobody" in text
    assert "confusion (rows: expected, columns: chosen):" in text
    assert report["tasks"] == 6 and report["nothing_fits_recall"] == 1.0
    assert report["unknown_agents"] == ["nobody"]


def test_symphony_route_evaluate_refuses_a_bad_file(team, tmp_path):  # noqa: F811
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"task": "a"}\n')

    with pytest.raises(CommandError, match="line 1: 'agent' is missing"):
        call_command("symphony", "route", "--evaluate", str(labelled))
    with pytest.raises(CommandError, match="No such file"):
        call_command("symphony", "route", "--evaluate", str(tmp_path / "missing.jsonl"))
