"""A person's view of a workflow: start the demo from the page, watch its graph change without a
reload, approve its approval step from the page, and see the run end.

Real daphne, worker cluster and dispatcher processes; Debian's chromium (see test_live_page).
"""

import json
import re
from pathlib import Path

import pytest

from tests.browser.test_live_page import browser, log_in, page  # noqa: F401 - fixtures and the login steps

pytestmark = [pytest.mark.browser, pytest.mark.process]

SCREENSHOT = Path("/tmp/workflow_page.png")
DEMO_INPUT = {"text": "A short text to read. It has two sentences.", "seconds": 1}
# Every state a node of the run page showed, in order, noted in the page itself: a reload would lose it.
NOTE_NODE_STATES = """run_id => {
  window.__stillThisPage = true;
  window.__seen = {};
  const note = () => document.querySelectorAll(`[id^="run-${run_id}-node-"]`).forEach(node => {
    const step = node.id.slice(`run-${run_id}-node-`.length), seen = window.__seen[step] ||= [];
    if (seen[seen.length - 1] !== node.dataset.state) seen.push(node.dataset.state);
  });
  note();
  new MutationObserver(note).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def node(run_id: int, step: str, state: str) -> str:
    return f"#run-{run_id}-node-{step}[data-state={state}]"


def test_the_demo_is_started_watched_and_approved_from_the_page(page, symphony):  # noqa: F811
    log_in(page)
    page.click("header nav >> text=Workflows")
    page.wait_for_url(re.compile(r"/workflows/$"))
    start = page.locator("form.start-form:has(input[name=definition][value=demo])")
    start.locator("textarea[name=input]").fill(json.dumps(DEMO_INPUT))
    start.locator("button[type=submit]").click()

    page.wait_for_url(re.compile(r"/workflows/runs/\d+/$"))
    run_id = int(re.search(r"/runs/(\d+)/$", page.url).group(1))
    page.evaluate(NOTE_NODE_STATES, run_id)
    page.wait_for_selector("#live-status[data-state=open]")

    # The fan-out ends, the short text skips the long read, and the run waits for a person.
    page.wait_for_selector(node(run_id, "stats", "COMPLETED"), timeout=60_000)
    page.wait_for_selector(node(run_id, "approve", "WAITING"), timeout=60_000)
    page.wait_for_selector(f"#run-{run_id}-header [data-status=WAITING]")
    assert page.get_attribute(f"#run-{run_id}-node-long-read", "data-state") == "SKIPPED"
    assert page.get_attribute(f"#run-{run_id}-node-digest", "data-state") == "NOT_STARTED"
    assert page.is_visible(f"#run-{run_id}-decisions >> text=Publish the digest of this text?")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    decision = page.locator(f"#run-{run_id}-decision-approve")
    decision.locator("textarea[name=comment]").fill("Reads well")
    decision.locator("button:has-text('Approve')").click()

    page.wait_for_selector(node(run_id, "digest", "COMPLETED"), timeout=60_000)
    page.wait_for_selector(f"#run-{run_id}-header [data-status=COMPLETED]")
    assert page.evaluate("window.__stillThisPage") is True
    seen = page.evaluate("window.__seen")
    assert seen["approve"][-2:] == ["WAITING", "COMPLETED"], seen
    assert seen["digest"][-1] == "COMPLETED" and "NOT_STARTED" in seen["digest"], seen
    assert page.is_hidden(f"#run-{run_id}-decisions")
    history = page.inner_text(f"#run-{run_id}-history")
    assert "approved step approve: Reads well" in history and "by admin" in history
    assert "run WAITING → RUNNING" in history and "run RUNNING → COMPLETED" in history
    assert '"digest"' in page.inner_text(f"#run-{run_id}-io")  # the run's output: its last step's
    assert page.js_errors == [], "\n".join(page.js_errors)
