"""The execution page explains one run: its input, result, usage and cost, its attempts, the log
split by attempt with timestamps, progress that reads consistently, and its re-runs."""

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from executions import selectors, services
from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.state import transition
from tests.conftest import make_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(client, alice):
    client.force_login(alice)
    return client


def page(client, execution) -> str:
    response = client.get(reverse("executions:detail", args=[execution.pk]))
    assert response.status_code == 200
    return response.content.decode()


def start(execution_id: int) -> None:
    transition(execution_id, S.PREPARING, expected=[S.QUEUED])
    transition(execution_id, S.RUNNING, expected=[S.PREPARING])


def add_log(execution, *lines: str) -> ExecutionEvent:
    return ExecutionEvent.objects.create(execution=execution, kind=EventKind.LOG, data={"lines": list(lines)})


def retried_twice(execution, log_lines: int = 1) -> None:
    """Attempt 1 fails and is retried with backoff, attempt 2 fails for good, attempt 3 (by hand) completes;
    each attempt logs ``log_lines`` events."""
    for attempt in (1, 2):
        start(execution.pk)
        for n in range(log_lines):
            add_log(execution, f"attempt {attempt} line {n}")
        services.execution_fail(
            execution_id=execution.pk,
            from_state=S.RUNNING,
            error={"type": "RuntimeError", "message": "flaky", "retryable": True},
            attempt=attempt,
            max_attempts=2,
            owner=None,
        )
    services.execution_retry(execution=Execution.objects.get(pk=execution.pk))
    start(execution.pk)
    for n in range(log_lines):
        add_log(execution, f"attempt 3 line {n}")
    transition(execution.pk, S.COMPLETED, expected=[S.RUNNING], fields={"result": {"answer": 42}})


def test_the_input_is_pretty_json_and_folded_when_long(owner, alice, make_agent):
    short = services.execution_submit(agent=make_agent("echo"), input_data={"question": "why?"}, submitted_by=alice)
    long = services.execution_submit(agent=short.agent, input_data={f"k{n}": n for n in range(40)}, submitted_by=alice)

    short_html, long_html = page(owner, short), page(owner, long)

    assert '<pre class="code json">{\n  &quot;question&quot;: &quot;why?&quot;\n}</pre>' in short_html
    assert "<details" not in short_html.split(f'id="execution-{short.pk}-input"')[1].split("</section>")[0]
    folded = long_html.split(f'id="execution-{long.pk}-input"')[1].split("</section>")[0]
    assert '<details class="json-fold"><summary>Show the input (42 lines)</summary>' in folded
    assert "&quot;k39&quot;: 39" in folded


def test_the_result_and_usage_with_cost_from_the_agents_prices(owner, alice, make_agent):
    agent = make_agent("echo")
    agent.settings["prices"] = {"input_per_million": 0.15, "output_per_million": 0.6, "currency": "USD"}
    agent.save()
    execution = services.execution_submit(agent=agent, input_data={}, submitted_by=alice)
    start(execution.pk)
    Execution.objects.filter(pk=execution.pk).update(
        usage={"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
    )
    transition(execution.pk, S.COMPLETED, expected=[S.RUNNING], fields={"result": {"answer": [1, 2]}})

    html = page(owner, execution)

    result = html.split(f'id="execution-{execution.pk}-result"')[1].split("</section>")[0]
    assert "&quot;answer&quot;: [\n    1,\n    2\n  ]" in result
    assert "<dt>Input tokens</dt><dd>1200</dd>" in result and "<dt>Output tokens</dt><dd>300</dd>" in result
    assert "<dt>Total tokens</dt><dd>1500</dd>" in result
    assert ">0.00036 USD</dd>" in result


def test_no_prices_no_cost(owner, alice, make_agent):
    execution = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    Execution.objects.filter(pk=execution.pk).update(usage={"prompt_tokens": 7, "completion_tokens": 3})

    result = page(owner, execution).split(f'id="execution-{execution.pk}-result"')[1].split("</section>")[0]

    assert "<dt>Total tokens</dt><dd>10</dd>" in result
    assert "Cost" not in result


def test_an_error_reads_as_type_message_and_folded_traceback(owner, alice, make_agent, run):
    execution = run(services.execution_submit(agent=make_agent("boom"), max_attempts=1, submitted_by=alice))

    error = page(owner, execution).split(f'id="execution-{execution.pk}-error"')[1].split("</section>")[0]

    assert "<code>RuntimeError</code> the agent broke" in error
    assert "<details><summary>Traceback</summary>" in error
    assert '"type"' not in error and "{" not in error.split("<details>")[0]  # not raw JSON


def test_attempts_and_the_log_split_by_attempt(owner, alice, make_agent):
    execution = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    retried_twice(execution)

    html = page(owner, execution)

    state_events = list(execution.events.filter(kind=EventKind.STATE).order_by("id"))
    starts = [e.pk for e in state_events if not e.from_state or e.to_state == S.QUEUED]
    attempts = html.split(f'id="execution-{execution.pk}-attempts"')[1].split("</section>")[0]
    rows = re.findall(r'<tr id="attempt-(\d+)"', attempts)
    assert [int(row) for row in rows] == starts and len(starts) == 3
    assert "requeued" in attempts and "attempt 1 failed; retrying in" in attempts
    assert "state-failed" in attempts and "state-completed" in attempts
    log = html.split(f'id="execution-{execution.pk}-log"')[1].split("</section>\n")[0]
    sections = re.findall(r'id="execution-\d+-log-attempt-(\d+)" class="log-attempt"><h3 class="log-attempt-head">'
                          r"Attempt (\d+)", log)  # fmt: skip
    assert [(int(start), int(n)) for start, n in sections] == list(zip(starts, [1, 2, 3], strict=True))
    for number, start_id in enumerate(starts, start=1):
        section = log.split(f"log-attempt-{start_id}")[1].split("</section>")[0]
        assert f"attempt {number} line 0" in section
        assert [f"attempt {n} line 0" in section for n in (1, 2, 3)].count(True) == 1
    logged = next(e for e in execution.events.filter(kind=EventKind.LOG) if e.data["lines"] == ["attempt 2 line 0"])
    line = next(part for part in log.split('<div class="log-line">') if "attempt 2 line 0" in part)
    moment = logged.created_at
    assert line.startswith(f'<time class="log-time" datetime="{moment.isoformat()}" title="{moment:%Y-%m-%d %H:%M:%S}')
    assert f' UTC">{moment:%H:%M:%S}</time> attempt 2 line 0</div>' in line


def test_step_and_percent_read_together(owner, alice, make_agent):
    execution = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    start(execution.pk)
    # What the slow demo agent reports as step 2 of 10 starts: one step done of ten.
    Execution.objects.filter(pk=execution.pk).update(progress=10.0, current_step="Step 2 of 10")

    progress = page(owner, execution).split(f'id="execution-{execution.pk}-progress"')[1].split("</section>")[0]

    assert '<span class="muted">Now:</span> Step 2 of 10' in progress
    assert '<span class="percent">10% done</span>' in progress
    assert 'aria-valuenow="10" aria-valuetext="10% done, Now: Step 2 of 10"' in progress
    transition(execution.pk, S.FAILED, expected=[S.RUNNING], fields={"error": {"message": "no"}})
    failed = page(owner, execution).split(f'id="execution-{execution.pk}-progress"')[1].split("</section>")[0]
    assert '<span class="muted">Stopped at:</span> Step 2 of 10' in failed


def test_the_page_costs_the_same_queries_however_long_the_history(owner, alice, make_agent):
    small = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    large = services.execution_submit(agent=small.agent, input_data={}, submitted_by=alice)
    retried_twice(large, log_lines=40)
    services.execution_rerun(execution=Execution.objects.get(pk=large.pk), by=alice)
    assert large.events.count() > 130

    counts = []
    for execution in (small, large):
        with CaptureQueriesContext(connection) as queries:
            page(owner, execution)
        counts.append(len(queries))

    assert counts[0] == counts[1], counts


def test_a_rerun_links_to_the_old_run_and_the_old_run_lists_its_reruns(owner, alice, make_agent):
    old = services.execution_submit(agent=make_agent("echo"), input_data={"n": 1}, submitted_by=alice)
    services.execution_cancel(execution=old, by=alice)
    first = services.execution_rerun(execution=Execution.objects.get(pk=old.pk), by=alice)
    second = services.execution_rerun(execution=Execution.objects.get(pk=old.pk), by=alice, input_data={"n": 2})

    old_html, new_html = page(owner, old), page(owner, second)

    reruns = old_html.split(f'id="execution-{old.pk}-reruns"')[1].split("</section>")[0]
    assert re.findall(r'<li id="rerun-(\d+)">', reruns) == [str(second.pk), str(first.pk)]
    link = reverse("executions:detail", args=[old.pk])
    assert f'<a href="{link}" class="rerun-of">re-run of #{old.pk}</a>' in new_html
    assert "&quot;n&quot;: 2" in new_html.split(f'id="execution-{second.pk}-input"')[1]


def test_reruns_others_made_are_listed_only_for_whoever_may_open_them(client, alice, bob, make_agent):
    old = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    services.execution_cancel(execution=old, by=alice)
    make_operator(bob)
    by_bob = services.execution_rerun(execution=Execution.objects.get(pk=old.pk), by=bob)

    client.force_login(alice)
    assert f'id="rerun-{by_bob.pk}"' not in page(client, old)
    client.force_login(bob)
    assert f'id="rerun-{by_bob.pk}"' in page(client, old)


def test_times_carry_their_exact_utc_moment(owner, alice, make_agent):
    execution = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    created = execution.created_at

    header = page(owner, execution).split(f'id="execution-{execution.pk}-header"')[1].split("</section>")[0]

    assert f'<time datetime="{created.isoformat()}" title="{created:%Y-%m-%d %H:%M:%S} UTC">' in header
    assert json.dumps(created.year) in header  # with the year


def test_an_attempt_whose_lines_were_left_out_says_so_rather_than_no_output(owner, alice, make_agent, monkeypatch):
    monkeypatch.setattr(selectors, "PAGE_LOG_EVENTS", 3)
    execution = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    retried_twice(execution, log_lines=2)  # six events; the page shows the newest three

    log = page(owner, execution).split(f'id="execution-{execution.pk}-log"')[1].split("</section>\n")[0]

    assert "3 earlier log events not shown" in log
    first, second, third = re.findall(r'class="log-attempt"( data-cut)?><h3', log)
    # Attempts 1 and 2 started before the first line shown: some of their lines may be left out.
    assert (first, second, third) == (" data-cut", " data-cut", "")
    assert "attempt 2 line 1" in log and "attempt 2 line 0" not in log
