"""Run again from the execution page: a finished run's input edited in the form, the new run's page
reached, showing the edited input, linked back to the old run, which lists it.

Real daphne, worker cluster and dispatcher processes; Debian's chromium (see test_live_page).
"""

import json
import re
from pathlib import Path

import pytest

from tests.browser.test_live_page import browser, log_in, page, submit_slow  # noqa: F401 - fixtures and steps

pytestmark = [pytest.mark.browser, pytest.mark.process]

SCREENSHOT = Path("/tmp/symphony-run-again.png")


def test_a_finished_run_is_run_again_with_edited_input(page, symphony):  # noqa: F811
    log_in(page)
    old_id = submit_slow(page, {"seconds": 0.2, "steps": 2}, "Run me again")
    page.wait_for_selector(f"#execution-{old_id}-header [data-state=COMPLETED]", timeout=30_000)
    # The form is on the page of a run that was finished when the page was loaded.
    page.reload()
    form = page.locator("#run-again form")
    textarea = form.locator("textarea[name=input]")
    assert json.loads(textarea.input_value()) == {"seconds": 0.2, "steps": 2}

    # A typing slip first: refused with the reason, the text kept, nothing submitted.
    textarea.fill('{"seconds": 0.2, "steps": 3,}')
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#run-again .field-error")
    assert "The input is not valid JSON" in page.inner_text("#run-again .field-error")
    assert page.locator("#run-again textarea[name=input]").input_value() == '{"seconds": 0.2, "steps": 3,}'
    assert len(symphony.db.executions()) == 1

    page.locator("#run-again textarea[name=input]").fill('{"seconds": 0.2, "steps": 3}')
    page.locator("#run-again button[type=submit]").click()
    page.wait_for_url(re.compile(rf"/executions/(?!{old_id}/)\d+/$"))
    new_id = int(re.search(r"/executions/(\d+)/$", page.url).group(1))

    assert json.loads(page.inner_text(f"#execution-{new_id}-input pre")) == {"seconds": 0.2, "steps": 3}
    assert page.inner_text(f"#execution-{new_id}-header a.rerun-of") == f"re-run of #{old_id}"
    page.wait_for_selector(f"#execution-{new_id}-header [data-state=COMPLETED]", timeout=30_000)
    steps = page.locator(f"#execution-{new_id}-steps li").all_inner_texts()
    assert steps == ["Step 1 of 3", "Step 2 of 3", "Step 3 of 3"]  # the edited input is what ran
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.click(f"#execution-{new_id}-header a.rerun-of")
    page.wait_for_url(re.compile(rf"/executions/{old_id}/$"))
    assert page.locator(f"#execution-{old_id}-reruns li").all_inner_texts()[0].startswith(f"#{new_id}")
    rows = symphony.db.executions()
    assert rows[new_id]["rerun_of_id"] == old_id and rows[old_id]["state"] == "COMPLETED"
    # The browser reports the refused form's 400 as a console error; nothing else went wrong.
    refused = "the server responded with a status of 400"
    assert [error for error in page.js_errors if refused not in error] == [], "\n".join(page.js_errors)
    assert len(page.js_errors) == 1
