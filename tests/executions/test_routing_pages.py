"""Routing from the operator's side: correcting a run's routing on its page and in the admin, an agent's
page (what the router learned about it) and the evaluation page for a labelled file."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from executions.agent_activity import task_router
from executions.models import ExecutionState as S
from executions.services import execution_submit
from executions.state import transition
from routing.corrections import routing_correct
from routing.decisions import RouteRequest
from routing.embeddings import MODEL_NAME
from routing.evaluation import evaluate, parse_labelled
from routing.models import AgentConfig, RoutingCorrection, TextVector
from routing.vectors import digest
from tests.conftest import make_operator
from tests.routing.test_router import make_team

pytestmark = pytest.mark.django_db

SQL_QUERY = "My Postgres query on the orders table takes a minute; can you make it faster?"


@pytest.fixture
def team(db):
    return make_team()


@pytest.fixture
def operator(client, bob):
    client.force_login(make_operator(bob))
    return bob


@pytest.fixture
def routed(team, alice):
    """Alice's run, routed by content match to the SQL analyst."""
    execution = execution_submit(input_data={"query": SQL_QUERY}, submitted_by=alice, strategy="content_match")
    assert execution.agent == team["sql"]
    return execution


def correct(client, execution, agent_name, note=""):
    url = reverse("executions:correct-routing", args=[execution.pk])
    return client.post(url, {"agent": agent_name, "note": note})


# Correcting from the execution page -----------------------------------------------------------


def test_an_operator_corrects_a_run_and_the_router_routes_the_same_query_elsewhere(client, operator, routed, team):
    before = task_router().decide(RouteRequest(query=SQL_QUERY), dry_run=True)

    response = correct(client, routed, "translator", note="wanted a French version")

    assert response.status_code == 302
    assert response["Location"].endswith(f"/executions/{routed.pk}/")
    correction = RoutingCorrection.objects.get()
    sql, translator = team["sql"], team["translator"]
    assert (correction.execution_id, correction.chosen, correction.correct) == (routed.pk, sql, translator)
    assert (correction.created_by, correction.note, correction.query) == (
        operator,
        "wanted a French version",
        SQL_QUERY,
    )
    after = task_router().decide(RouteRequest(query=SQL_QUERY), dry_run=True)
    assert (before.chosen, after.chosen) == (sql, translator)
    page = client.get(response["Location"]).content.decode()
    assert f"execution {routed.pk} should have gone to translator" in page
    assert "corrected to <strong>translator</strong> by bob" in page


def test_the_page_offers_the_other_enabled_agents_to_those_who_may_correct(client, operator, routed, team):
    AgentConfig.objects.create(name="retired", enabled=False, settings={"path": "tests.agents.echo"})

    page = client.get(reverse("executions:detail", args=[routed.pk])).content.decode()

    assert "Should have gone to" in page
    assert '<option value="translator">' in page
    assert '<option value="sql-analyst">' not in page and '<option value="retired">' not in page


def test_a_plain_user_sees_the_corrections_of_her_run_but_may_not_correct_it(client, alice, bob, routed, team):
    routing_correct(query=SQL_QUERY, correct=team["translator"], chosen=team["sql"], execution_id=routed.pk, by=bob)
    client.force_login(alice)

    page = client.get(reverse("executions:detail", args=[routed.pk])).content.decode()
    response = correct(client, routed, "translator")

    assert "corrected to <strong>translator</strong> by bob" in page
    assert "Should have gone to" not in page
    assert response.status_code == 403
    assert RoutingCorrection.objects.count() == 1


def test_a_run_whose_task_named_its_agent_is_refused_with_the_reason(client, operator, team, alice):
    named = execution_submit(agent=team["sql"], input_data={"query": SQL_QUERY}, submitted_by=alice)

    response = correct(client, named, "translator")

    assert response.status_code == 400
    assert f"Execution {named.pk} was not routed: its task named sql-analyst." in response.content.decode()
    assert not RoutingCorrection.objects.exists()


def test_correcting_to_the_agent_chosen_or_to_no_enabled_agent_is_refused(client, operator, routed):
    same = correct(client, routed, "sql-analyst")
    missing = correct(client, routed, "nobody")

    assert same.status_code == missing.status_code == 400
    assert "The task already went to sql-analyst" in same.content.decode()
    assert "There is no enabled agent named &#x27;nobody&#x27;" in missing.content.decode()
    assert not RoutingCorrection.objects.exists()


# The admin ----------------------------------------------------------------------------------------


def test_a_correction_added_in_the_admin_stores_its_query_vector(admin_client, admin_user, team):
    sql, translator = team["sql"], team["translator"]
    query = "Put this release note into German, please."

    response = admin_client.post(
        reverse("admin:routing_routingcorrection_add"),
        {"query": query, "chosen": sql.pk, "correct": translator.pk, "note": "by hand"},
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    correction = RoutingCorrection.objects.get()
    assert (correction.correct, correction.chosen, correction.created_by) == (translator, sql, admin_user)
    assert TextVector.objects.filter(model=MODEL_NAME, digest=digest(query)).exists()


def test_the_admin_keeps_a_corrections_query_and_agents_once_made(admin_client, team):
    translator = team["translator"]
    correction = routing_correct(query="Translate this.", correct=translator, chosen=team["sql"])
    url = reverse("admin:routing_routingcorrection_change", args=[correction.pk])

    admin_client.post(url, {"query": "Something else", "correct": team["sql"].pk, "note": "clarified"})

    correction.refresh_from_db()
    assert (correction.query, correction.correct, correction.note) == ("Translate this.", translator, "clarified")


def test_the_admin_refuses_a_correction_to_the_agent_chosen(admin_client, team):
    response = admin_client.post(
        reverse("admin:routing_routingcorrection_add"),
        {"query": "Translate this.", "chosen": team["sql"].pk, "correct": team["sql"].pk},
    )

    assert response.status_code == 200
    assert "The task already went to sql-analyst" in response.content.decode()
    assert not RoutingCorrection.objects.exists()


def test_the_execution_admin_links_a_routed_run_to_its_correction_form(admin_client, routed):
    page = admin_client.get(reverse("admin:executions_execution_change", args=[routed.pk])).content.decode()

    assert f'href="/executions/{routed.pk}/#routing-correction"' in page


# The agent page -----------------------------------------------------------------------------------


def test_the_agent_page_shows_what_the_router_learned(client, operator, team, alice):
    sql, translator = team["sql"], team["translator"]
    done = execution_submit(agent=sql, input_data={"query": "Index the customers table by email."}, submitted_by=alice)
    for before, state in ((S.QUEUED, S.PREPARING), (S.PREPARING, S.RUNNING), (S.RUNNING, S.COMPLETED)):
        transition(done.pk, state, expected=[before])
    routing_correct(query="Tune this slow join.", correct=sql, chosen=translator, by=operator)
    routing_correct(query="Translate the SQL manual into German.", correct=translator, chosen=sql, execution_id=7)

    response = client.get(reverse("executions:agent", args=[sql.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Database analyst" in page and "Why is this Postgres query slow?" in page
    assert "Tune this slow join." in page and "from translator · by bob" in page
    assert "Translate the SQL manual into German." in page and 'href="/executions/7/"' in page
    assert "Index the customers table by email." in page
    threshold = task_router().content_model()[0].threshold(sql.pk)
    assert f'<dd id="agent-threshold">{threshold:.3f}</dd>' in page


def test_the_agents_list_links_each_agent_to_its_page(client, operator, team):
    page = client.get(reverse("executions:agents")).content.decode()

    assert f'href="{reverse("executions:agent", args=[team["sql"].pk])}"' in page
    assert f'href="{reverse("executions:routing-evaluate")}"' in page


def test_the_agent_page_is_for_operators(client, alice, team):
    client.force_login(alice)

    assert client.get(reverse("executions:agent", args=[team["sql"].pk])).status_code == 403


# The evaluation page ------------------------------------------------------------------------------

LABELLED = "\n".join(
    json.dumps(row)
    for row in [
        {"task": "Why does this SQL query do a full table scan?", "agent": "sql-analyst"},
        {"task": "Translate our privacy policy into French.", "agent": "translator"},
        {"task": "Tune the indexes on the invoices table.", "agent": "sql-analyst"},
        {"task": "Bake me a sourdough loaf.", "agent": None},
    ]
)


def test_the_evaluation_page_reports_accuracy_and_the_confusion_table(client, operator, team):
    expected = evaluate(parse_labelled(LABELLED), task_router())

    response = client.post(reverse("executions:routing-evaluate"), {"text": LABELLED})

    page = response.content.decode()
    assert response.status_code == 200
    assert f'<dd id="accuracy">{expected.accuracy * 100:.1f}%</dd>' in page
    assert '<table class="executions confusion" id="confusion">' in page
    assert '<th scope="row">(nothing fits)</th>' in page and '<th scope="col">translator</th>' in page
    assert "SYMPHONY_ROUTING_MIN_SCORE" in page


def test_the_evaluation_page_reads_an_uploaded_csv(client, operator, team):
    upload = SimpleUploadedFile("labels.csv", b"task,agent\nTranslate this letter into German.,translator\n")

    response = client.post(reverse("executions:routing-evaluate"), {"file": upload})

    assert response.status_code == 200
    assert 'id="evaluation-report"' in response.content.decode()


def test_a_malformed_file_gives_the_form_back_with_the_line(client, operator, team):
    text = '{"task": "Translate this.", "agent": "translator"}\n{"task": "oops"'

    response = client.post(reverse("executions:routing-evaluate"), {"text": text})

    page = response.content.decode()
    assert response.status_code == 400
    assert "line 2: not valid JSON" in page
    assert 'id="evaluation-report"' not in page


def test_an_upload_over_two_megabytes_is_refused(client, operator, team):
    upload = SimpleUploadedFile("big.jsonl", b"x" * (2 * 1024 * 1024 + 1))

    response = client.post(reverse("executions:routing-evaluate"), {"file": upload})

    assert response.status_code == 400
    assert "upload at most 2 MB" in response.content.decode()


def test_the_evaluation_page_is_for_operators(client, alice, team):
    client.force_login(alice)

    assert client.get(reverse("executions:routing-evaluate")).status_code == 403
    assert client.post(reverse("executions:routing-evaluate"), {"text": LABELLED}).status_code == 403


def test_the_evaluation_page_sends_a_big_file_to_the_command_line(client, operator, team):
    from executions.evaluation_page import MAX_ROWS

    text = "\n".join(json.dumps({"task": f"Translate line {n} into French", "agent": "translator"})
                     for n in range(MAX_ROWS + 1))  # fmt: skip

    response = client.post(reverse("executions:routing-evaluate"), {"text": text})

    assert response.status_code == 400
    assert "symphony route --evaluate FILE" in response.content.decode()
