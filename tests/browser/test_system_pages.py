"""The overview's charts and the agents page's load, watched in Chromium while real executions run
through the worker cluster and the dispatcher's rollup: no reload, the page polls its own body."""

import pytest

from tests.browser.test_live_page import browser, log_in, page  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.process]


def stay(page) -> None:  # noqa: F811 - the page fixture's name
    """Mark the page: anything that navigates or reloads it wipes the marker."""
    page.evaluate("window.__stillThisPage = true")


def test_the_overview_charts_change_live_as_runs_end(page, symphony):  # noqa: F811
    log_in(page)
    page.goto("/overview/?window=hour")
    stay(page)
    assert page.locator("svg#throughput-chart").count() == 1
    assert page.locator("svg#throughput-chart rect").count() == 0
    assert page.inner_text("#ended-count") == "0"

    for _ in range(3):
        symphony.submit("slow", {"seconds": 0.2, "steps": 1})
    symphony.submit("flaky", {"fail_attempts": 1}, "--max-attempts", "1")  # fails its only attempt: FAILED

    page.wait_for_function("document.querySelector('#ended-count').textContent === '4'", timeout=60_000)
    assert page.locator("svg#throughput-chart rect.completed").count() >= 1
    assert page.locator("svg#throughput-chart rect.failed").count() >= 1
    assert page.get_attribute("svg#duration-chart path.p50", "d").startswith("M")
    assert page.inner_text("#failed-count") == "1"
    assert page.locator("#recent-failures tbody tr[id^=failure-]").count() == 1
    assert page.evaluate("window.__stillThisPage") is True
    assert page.js_errors == [], "\n".join(page.js_errors)


def test_the_agents_page_shows_a_run_start_live(page, symphony):  # noqa: F811
    log_in(page)
    page.goto("/agents/")
    stay(page)
    running = page.locator("tr:has(strong a:text-is('slow')) td.running")
    assert running.inner_text() == "0"

    symphony.submit("slow", {"seconds": 60, "steps": 3})

    page.wait_for_function(
        "[...document.querySelectorAll('tr')].some(row => row.querySelector('strong')?.textContent === 'slow'"
        " && row.querySelector('td.running').textContent === '1')",
        timeout=30_000,
    )
    assert page.evaluate("window.__stillThisPage") is True
    assert page.js_errors == [], "\n".join(page.js_errors)
