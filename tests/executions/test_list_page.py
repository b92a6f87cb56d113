"""The executions list at scale: keyset pages, filters in the URL, text search, counts, durations.

Who sees what is in test_access.py; the list's websocket in test_consumers.py.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from executions import listing
from executions.list_page import with_times
from executions.listing import ExecutionFilters, state_counts
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.services import execution_cancel, execution_submit
from tests.conftest import make_operator
from tests.executions.test_state import force_state
from workflows.services import workflow_create, workflow_task_submitted

pytestmark = pytest.mark.django_db

LIST = reverse("executions:list")
HTMX_RESULTS = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "execution-results"}


@pytest.fixture
def logged_in(client, alice):
    client.force_login(make_operator(alice))
    return client


def submit(agent, **options) -> Execution:
    return execution_submit(agent=agent, input_data=options.pop("input_data", {}), **options)


def set_fields(execution: Execution, **fields) -> Execution:
    """Test setup only: put values a worker would have written."""
    Execution.objects.filter(pk=execution.pk).update(**fields)
    execution.refresh_from_db()
    return execution


def shown_ids(html: str) -> list[int]:
    body = html[html.index('id="execution-rows"') :].split("</tbody>")[0]
    return [int(part.split('"')[0]) for part in body.split('<tr id="execution-')[1:]]


# Paging ------------------------------------------------------------------------------------


def test_older_links_reach_every_execution_once_newest_first(logged_in, make_agent, settings, monkeypatch):
    monkeypatch.setattr("executions.list_page.PAGE_SIZE", 4)
    agent = make_agent("echo")
    ids = [submit(agent, name=f"run {n}").pk for n in range(10)]
    seen, url = [], LIST
    while url:
        html = logged_in.get(url).content.decode()
        seen.append(shown_ids(html))
        older = html.split('rel="next"')[0].rsplit('href="', 1)[-1].split('"')[0] if 'rel="next"' in html else ""
        url = LIST + older.replace("&amp;", "&") if older else ""
    assert [len(page) for page in seen] == [4, 4, 2]
    assert sum(seen, []) == sorted(ids, reverse=True)


def test_a_page_number_is_not_a_thing_the_cursor_is(logged_in, make_agent, monkeypatch):
    monkeypatch.setattr("executions.list_page.PAGE_SIZE", 2)
    agent = make_agent("echo")
    ids = [submit(agent).pk for _ in range(5)]
    assert shown_ids(logged_in.get(LIST, {"page": 2}).content.decode()) == ids[::-1][:2]
    html = logged_in.get(LIST, {"before": ids[2]}).content.decode()
    assert shown_ids(html) == [ids[1], ids[0]]
    assert 'rel="first"' in html and 'rel="next"' not in html
    assert f"older than #{ids[2]}" in html


def test_the_list_page_query_count_does_not_grow_with_rows(logged_in, alice, make_agent, django_assert_num_queries):
    agent = make_agent("echo")
    submit(agent, name="run first", tags=["x"], submitted_by=alice)
    logged_in.get(LIST)  # the session and permissions, read once

    def queries_for(params: dict) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert logged_in.get(LIST, params).status_code == 200
        return len(captured)

    filtered = {"q": "run", "state": "QUEUED", "agent": agent.name, "tag": "x", "submitted_by": "alice"}
    small = (queries_for({}), queries_for(filtered), queries_for({"before": 10**6}))
    for n in range(60):
        execution = submit(agent, name=f"run {n}", tags=["x"], submitted_by=alice if n % 2 else None)
        if n % 3 == 0:
            force_state(execution, S.RUNNING)
            set_fields(execution, started_at=execution.created_at)
    large = (queries_for({}), queries_for(filtered), queries_for({"before": 10**6}))
    assert small == large
    with django_assert_num_queries(small[0]):
        logged_in.get(LIST)


# Filters -----------------------------------------------------------------------------------


def test_filters_come_from_the_url_and_combine(logged_in, alice, bob, make_agent):
    echo, other = make_agent("echo"), make_agent("echo", name="other")
    mine = submit(echo, name="weekly report", tags=["finance"], submitted_by=alice)
    theirs = submit(echo, name="weekly digest", tags=["finance"], submitted_by=bob)
    elsewhere = submit(other, name="weekly chores", submitted_by=alice)
    cancelled = submit(echo, name="monthly report", submitted_by=alice)
    execution_cancel(execution=cancelled, by=alice)

    def ids(**params) -> list[int]:
        return shown_ids(logged_in.get(LIST, params).content.decode())

    assert ids(agent="echo") == [cancelled.pk, theirs.pk, mine.pk]
    assert ids(agent="other") == [elsewhere.pk]
    assert ids(tag="finance") == [theirs.pk, mine.pk]
    assert ids(submitted_by="bob") == [theirs.pk]
    assert ids(state="CANCELLED") == [cancelled.pk]
    assert ids(q="weekly", agent="echo", submitted_by="alice") == [mine.pk]
    assert ids(q="report", state="QUEUED") == [mine.pk]
    assert ids(agent="nobody") == []


def test_the_created_range_takes_whole_utc_days(logged_in, make_agent):
    agent = make_agent("echo")
    old = set_fields(submit(agent), created_at=datetime(2026, 1, 10, 23, 59, tzinfo=UTC))
    new = set_fields(submit(agent), created_at=datetime(2026, 1, 11, 0, 0, tzinfo=UTC))

    def ids(**params) -> list[int]:
        return shown_ids(logged_in.get(LIST, params).content.decode())

    assert ids(created_from="2026-01-11") == [new.pk]
    assert ids(created_to="2026-01-10") == [old.pk]
    assert ids(created_from="2026-01-10", created_to="2026-01-11") == [new.pk, old.pk]
    # A date that does not read filters nothing rather than failing the page.
    assert ids(created_from="soon") == [new.pk, old.pk]


def test_the_workflow_filter_shows_the_runs_steps(logged_in, alice, make_agent):
    agent = make_agent("echo")
    run = workflow_create(name="nightly", by=alice)
    step = submit(agent, name="step one", submitted_by=alice)
    workflow_task_submitted(run=run, task=step.task, execution=step)
    submit(agent, name="not in it", submitted_by=alice)

    assert shown_ids(logged_in.get(LIST, {"workflow": run.pk}).content.decode()) == [step.pk]
    assert shown_ids(logged_in.get(LIST, {"workflow": run.pk + 1}).content.decode()) == []


def test_an_unknown_state_filter_shows_everything(logged_in, make_agent):
    execution = submit(make_agent("echo"))
    assert shown_ids(logged_in.get(LIST, {"state": "NONSENSE"}).content.decode()) == [execution.pk]


def test_a_filter_changed_with_htmx_gets_the_results_only(logged_in, make_agent):
    agent = make_agent("echo")
    waiting = submit(agent, name="waiting")
    cancelled = submit(agent, name="called off")
    execution_cancel(execution=cancelled)

    response = logged_in.get(LIST, {"state": "CANCELLED", "q": "off"}, **HTMX_RESULTS)
    html = response.content.decode()

    assert html.lstrip().startswith('<div id="execution-results"')
    assert "Submit a task" not in html
    assert shown_ids(html) == [cancelled.pk] and waiting.pk not in shown_ids(html)
    # The socket of the swapped results follows the same filters.
    assert 'ws-connect="/ws/ui/executions/?state=CANCELLED&amp;q=off"' in html
    # The form's state select (outside the results) follows a state picked from the counts.
    assert 'id="filter_state" hx-swap-oob="true"' in html and '<option value="CANCELLED" selected>' in html


def test_the_filter_form_works_without_javascript(logged_in, make_agent):
    html = logged_in.get(LIST, {"tag": "finance", "q": "weekly"}).content.decode()
    form = html[html.index('id="execution-filters"') :].split("</form>")[0]
    assert 'method="get"' in form and f'action="{LIST}"' in form
    assert 'value="weekly"' in form and 'value="finance"' in form
    for name in ("q", "state", "agent", "tag", "workflow", "submitted_by", "created_from", "created_to"):
        assert f'name="{name}"' in form


# Search ------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["QUARTERLY", "arterl", "Quarterly fig"])
def test_search_finds_a_substring_of_the_name_in_any_case(logged_in, make_agent, typed):
    agent = make_agent("echo")
    found = submit(agent, name="Quarterly figures")
    submit(agent, name="monthly figures")
    assert shown_ids(logged_in.get(LIST, {"q": typed}).content.decode()) == [found.pk]


def test_search_reads_the_input_and_the_error(logged_in, make_agent):
    agent = make_agent("echo")
    by_input = submit(agent, name="a", input_data={"text": "the zebra crossing"})
    failed = submit(agent, name="b")
    force_state(failed, S.FAILED)
    set_fields(failed, error={"type": "ValueError", "message": "a flamingo blocked it"})
    submit(agent, name="c", input_data={"text": "nothing here"})

    def ids(text: str) -> list[int]:
        return shown_ids(logged_in.get(LIST, {"q": text}).content.decode())

    assert ids("zebra") == [by_input.pk]
    assert ids("FLAMINGO") == [failed.pk]
    assert ids("ValueError") == [failed.pk]


def test_search_reads_the_first_searched_chars_of_a_long_input_and_error(logged_in, make_agent):
    from executions.search import SEARCHED_CHARS

    agent = make_agent("echo")
    filler = "x" * SEARCHED_CHARS
    early = submit(agent, name="a", input_data={"text": "pelican " + filler})
    submit(agent, name="b", input_data={"text": filler + " albatross"})
    failed = submit(agent, name="c")
    force_state(failed, S.FAILED)
    set_fields(failed, error={"message": "cormorant " + filler + " heron"})

    def ids(text: str) -> list[int]:
        return shown_ids(logged_in.get(LIST, {"q": text}).content.decode())

    assert ids("pelican") == [early.pk]
    assert ids("cormorant") == [failed.pk]
    assert ids("albatross") == [] and ids("heron") == []  # past the indexed prefix


def test_search_follows_a_task_edited_and_an_execution_deleted(logged_in, make_agent):
    agent = make_agent("echo")
    execution = submit(agent, name="draft")
    assert shown_ids(logged_in.get(LIST, {"q": "draft"}).content.decode()) == [execution.pk]

    type(execution.task).objects.filter(pk=execution.task_id).update(name="final")
    assert shown_ids(logged_in.get(LIST, {"q": "draft"}).content.decode()) == []
    assert shown_ids(logged_in.get(LIST, {"q": "final"}).content.decode()) == [execution.pk]

    Execution.objects.filter(pk=execution.pk).delete()
    assert shown_ids(logged_in.get(LIST, {"q": "final"}).content.decode()) == []


def test_odd_searches_are_substrings_too(logged_in, make_agent):
    agent = make_agent("echo")
    tagged = submit(agent, name="job 7% done_now")
    submit(agent, name="job 75 done")
    for typed in ("7% d", "b 7%", "e_n", "done_now"):
        assert shown_ids(logged_in.get(LIST, {"q": typed}).content.decode()) == [tagged.pk], typed
    for typed in ('"done', 'done" OR "job', "NEAR(job done)", "job*"):  # no query syntax: text as typed
        assert shown_ids(logged_in.get(LIST, {"q": typed}).content.decode()) == [], typed


def test_a_search_under_three_characters_says_so_and_filters_nothing(logged_in, make_agent):
    execution = submit(make_agent("echo"), name="ab")
    html = logged_in.get(LIST, {"q": "ab"}).content.decode()
    assert shown_ids(html) == [execution.pk]
    assert "Ensure this value has at least 3 characters" in html


def test_a_search_pages_through_every_match_past_its_windows(logged_in, make_agent, monkeypatch):
    """SQLite reads the newest matches in windows: a page may be short, and Older goes on."""
    monkeypatch.setattr("executions.search.SEARCH_WINDOW", 3)
    monkeypatch.setattr("executions.list_page.PAGE_SIZE", 2)
    echo, other = make_agent("echo"), make_agent("echo", name="other")
    wanted = []
    for n in range(9):
        execution = submit(echo if n % 3 == 0 else other, name=f"needle {n}")
        if n % 3 == 0:
            wanted.append(execution.pk)
    seen, url = [], f"{LIST}?q=needle&agent=echo"
    while url:
        html = logged_in.get(url).content.decode()
        seen += shown_ids(html)
        older = html.split('rel="next"')[0].rsplit('href="', 1)[-1].split('"')[0] if 'rel="next"' in html else ""
        url = LIST + older.replace("&amp;", "&") if older else ""
    assert seen == wanted[::-1]


# Counts ------------------------------------------------------------------------------------


def test_counts_follow_the_filters_but_not_the_state_filter(logged_in, make_agent):
    echo, other = make_agent("echo"), make_agent("echo", name="other")
    submit(echo)
    execution_cancel(execution=submit(echo))
    submit(other)

    counts = state_counts(Execution.objects.all(), ExecutionFilters(agent="echo", states=("CANCELLED",)))

    assert {c.state: c.count for c in counts.states if c.count} == {"QUEUED": 1, "CANCELLED": 1}
    assert (counts.matching, counts.more, counts.shown) == (1, False, "1")
    html = logged_in.get(LIST, {"agent": "echo"}).content.decode()
    assert '<span class="count">2</span> matching' in html


def test_counts_stop_at_the_cap_and_say_so(make_agent):
    agent = make_agent("echo")
    for _ in range(4):
        submit(agent)
    execution_cancel(execution=submit(agent))

    counts = state_counts(Execution.objects.all(), ExecutionFilters(), cap=3)

    queued = next(c for c in counts.states if c.state == S.QUEUED)
    assert (queued.count, queued.more) == (3, True)
    assert counts.more and counts.matching == 4
    assert counts.shown.startswith("≈ ") if counts.estimate else counts.shown == "more than 4"
    exact = state_counts(Execution.objects.all(), ExecutionFilters(states=(S.CANCELLED,)), cap=3)
    assert (exact.matching, exact.more, exact.shown) == (1, False, "1")


def test_a_capped_count_is_marked_on_the_page(logged_in, make_agent, monkeypatch):
    monkeypatch.setattr(listing, "COUNT_CAP", 2)
    agent = make_agent("echo")
    for _ in range(3):
        submit(agent)
    html = logged_in.get(LIST).content.decode()
    assert 'Queued <span class="count" title="more than 2: counting stops there">2+</span>' in html


# Columns -----------------------------------------------------------------------------------


def test_waited_and_ran_are_shown_as_durations(logged_in, make_agent):
    agent = make_agent("echo")
    now = datetime.now(UTC)
    done = submit(agent)
    force_state(done, S.COMPLETED)
    set_fields(
        done,
        queued_at=now - timedelta(minutes=10),
        started_at=now - timedelta(minutes=10) + timedelta(seconds=3.2),
        finished_at=now - timedelta(minutes=10) + timedelta(seconds=3.2 + 125),
    )
    running = submit(agent)
    force_state(running, S.RUNNING)
    set_fields(running, queued_at=now - timedelta(hours=2), started_at=now - timedelta(hours=1, minutes=1))
    waiting = set_fields(submit(agent), queued_at=now - timedelta(seconds=42))

    shown = {e.pk: (e.waited, e.ran, e.still_running) for e in with_times(list(Execution.objects.all()), now)}

    assert shown[done.pk] == ("3.2 s", "2 min 5 s", False)
    assert shown[running.pk] == ("59 min", "1 h 1 min", True)
    assert shown[waiting.pk] == ("42 s", "", False)
    html = logged_in.get(LIST).content.decode()
    assert "2 min 5 s" in html and "1 h 1 min…" in html


def test_created_times_carry_the_exact_utc_time_for_the_local_time_script(logged_in, make_agent):
    execution = set_fields(submit(make_agent("echo")), created_at=datetime(2025, 11, 30, 9, 12, 5, tzinfo=UTC))
    html = logged_in.get(LIST).content.decode()
    assert (
        '<time datetime="2025-11-30T09:12:05Z" title="2025-11-30 09:12:05 UTC" data-local>2025-11-30 09:12 UTC</time>'
        in html
    ), execution.pk
    assert "js/execution-list.js" in html


# The live list's push ----------------------------------------------------------------------


def test_a_live_push_costs_the_same_queries_however_many_rows(alice, make_agent, django_assert_num_queries):
    from django.db import connection
    from django.http import QueryDict
    from django.test.utils import CaptureQueriesContext

    from executions.consumers import _list_push

    push = _list_push.func  # the synchronous function the consumer runs on a database thread
    operator = make_operator(alice)
    agent = make_agent("echo")
    params = QueryDict("q=run&agent=echo&tag=x")
    submit(agent, name="run 0", tags=["x"])
    push(operator, params, None, set())  # the user's permissions, read once per socket

    def queries(shown) -> int:
        with CaptureQueriesContext(connection) as captured:
            _, ids = push(operator, params, shown, {1})
        return len(captured), ids

    small, ids = queries(None)
    assert queries(ids)[0] == small
    for n in range(60):
        submit(agent, name=f"run {n}", tags=["x"])
    large, ids = queries(None)
    assert large == small and len(ids) == 50
    with django_assert_num_queries(small):
        push(operator, params, ids, set(ids[:10]))
