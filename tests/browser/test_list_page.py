"""Finding runs on the executions list in Chromium: paging past the first hundred, and a filter
plus a search that narrow the table live (no reload), with the live updates following them."""

import json
import re

import pytest

from tests.browser.test_live_page import browser, log_in, page  # noqa: F401 - fixtures and the login steps

pytestmark = [pytest.mark.browser, pytest.mark.process]


def add_executions(symphony, specs: list[tuple[str, str]]) -> list[int]:
    """Queue an execution per (agent, name) in one manage.py run; their ids, in order."""
    code = (
        "import json\n"
        "from executions.services import execution_submit\n"
        "from routing.models import AgentConfig\n"
        f"specs = {json.dumps(specs)}\n"
        "agents = {a.name: a for a in AgentConfig.objects.all()}\n"
        "print(json.dumps([execution_submit(agent=agents[a], input_data={'text': n}, name=n).pk for a, n in specs]))\n"
    )
    result = symphony.manage("shell", "-c", code)
    return json.loads(result.stdout.strip().splitlines()[-1])


def shown_ids(page) -> list[int]:  # noqa: F811
    return [
        int(row_id.split("-")[1])
        for row_id in page.eval_on_selector_all("#execution-rows tr[id]", "rows => rows.map(row => row.id)")
    ]


def test_older_pages_reach_past_the_first_hundred(page, symphony):  # noqa: F811
    ids = add_executions(symphony, [("text-stats", f"bulk {n:03d}") for n in range(120)])
    log_in(page)
    page.wait_for_selector("#live-status[data-state=open]")
    page.evaluate("window.__stillThisPage = true")

    seen = [shown_ids(page)]
    while page.locator("#execution-pager a[rel=next]").count():
        previous = seen[-1]
        page.click("#execution-pager a[rel=next]")
        page.wait_for_function(
            "first => document.querySelector('#execution-rows tr[id]').id !== 'execution-' + first", arg=previous[0]
        )
        seen.append(shown_ids(page))
        assert re.search(rf"[?&]before={previous[-1]}\b", page.url), page.url

    assert [len(ids_on_page) for ids_on_page in seen] == [50, 50, 20]
    assert sum(seen, []) == sorted(ids, reverse=True)  # every one once, the 101st newest included
    assert "bulk 019" in page.inner_text("#execution-rows")  # the 101st newest
    assert page.evaluate("window.__stillThisPage") is True  # swapped in place, no reload

    # The URL is the page: opened afresh it shows the same rows, and "Newest" goes back.
    page.goto(page.url)
    assert shown_ids(page) == seen[-1]
    page.click("#execution-pager a[rel=first]")
    page.wait_for_function("() => !location.search.includes('before=')")
    page.wait_for_selector(f"#execution-{ids[-1]}")
    assert shown_ids(page) == seen[0]
    assert page.js_errors == [], "\n".join(page.js_errors)


def test_a_filter_and_a_search_narrow_the_table_live(page, symphony):  # noqa: F811
    add_executions(
        symphony,
        [("text-stats", "weekly invoice"), ("slow", "weekly invoice"), ("text-stats", "monthly report")] * 3,
    )
    log_in(page)
    page.wait_for_selector("#live-status[data-state=open]")
    page.evaluate("window.__stillThisPage = true")
    assert len(shown_ids(page)) == 9

    page.fill("#filter_agent", "text-stats")
    page.dispatch_event("#filter_agent", "change")
    page.wait_for_function("() => document.querySelectorAll('#execution-rows tr[id]').length === 6")
    page.fill("#filter_q", "INVOICE")  # applies as typed, after a short pause
    page.wait_for_function("() => document.querySelectorAll('#execution-rows tr[id]').length === 3")

    assert page.evaluate("window.__stillThisPage") is True
    assert set(page.locator("#execution-rows td:nth-child(2) > a").all_inner_texts()) == {"weekly invoice"}
    assert set(page.locator("#execution-rows td:nth-child(3)").all_inner_texts()) == {"text-stats"}
    assert page.url.endswith("/?q=INVOICE&agent=text-stats")  # empty fields left out: a URL to share
    assert page.inner_text("#matching").startswith("3 matching")
    assert page.get_attribute("#execution-results", "ws-connect").endswith("agent=text-stats&q=INVOICE")

    # Live updates follow the filters: a matching run shows up, the others never do.
    page.wait_for_selector("#live-status[data-state=open]")
    wanted, other_agent, other_text = add_executions(
        symphony, [("text-stats", "late invoice"), ("slow", "late invoice"), ("text-stats", "late report")]
    )
    page.wait_for_selector(f"#execution-{wanted}")
    page.wait_for_function("() => document.querySelector('#matching').innerText.startsWith('4 matching')")
    assert page.locator(f"#execution-{other_agent}, #execution-{other_text}").count() == 0
    assert len(shown_ids(page)) == 4

    # Times are the reader's own, with the exact UTC time kept in the tooltip.
    created = page.locator(f"#execution-{wanted} time")
    assert created.get_attribute("title").endswith(" UTC")
    assert created.get_attribute("data-localised") == ""
    assert "UTC" not in created.inner_text()

    # The back button undoes the search; the URL, shared, opens the same view afresh.
    shared = page.url
    page.go_back()
    page.wait_for_function("() => location.search === '?agent=text-stats'")
    page.wait_for_selector("#execution-rows td:has-text('monthly report')")
    page.goto(shared)
    assert len(shown_ids(page)) == 4 and page.input_value("#filter_q") == "INVOICE"
    assert page.js_errors == [], "\n".join(page.js_errors)
