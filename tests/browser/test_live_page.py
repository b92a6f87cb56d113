"""A person's view of a run: log in, submit from the form, watch the detail page update
live (no reload) to COMPLETED, and cancel a second run from its page.

Drives Debian's chromium (``bash .ci/ensure-chromium`` installs it); never a
downloaded browser.
"""

import json
import re
from pathlib import Path

import pytest

from tests.process.conftest import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = [pytest.mark.browser, pytest.mark.process]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/symphony-detail.png")


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `bash .ci/ensure-chromium` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, symphony):
    symphony.start_web()
    symphony.start_worker()
    symphony.start_dispatcher()
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, base_url=symphony.base_url)
    # Keeps the page's websocket at hand, so a test can make it reconnect as after a network blip.
    context.add_init_script(
        "document.addEventListener('htmx:wsOpen', e => { window.__socket = e.detail.socketWrapper; });"
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    context.on("weberror", lambda error: errors.append(str(error.error)))
    context.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()


def log_in(page) -> None:
    page.goto("/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", ADMIN_USERNAME)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def submit_slow(page, input_data: dict, name: str) -> int:
    page.select_option("#id_agent", "slow")
    page.fill("#id_input", json.dumps(input_data))
    page.fill("#id_name", name)
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(re.compile(r"/executions/\d+/$"))
    execution_id = int(re.search(r"/executions/(\d+)/$", page.url).group(1))
    # Anything that navigates or reloads the page from here on wipes this marker.
    page.evaluate("window.__stillThisPage = true")
    page.wait_for_selector("#live-status[data-state=open]")
    return execution_id


def state_of(page, execution_id: int) -> str:
    return page.get_attribute(f"#execution-{execution_id}-header [data-state]", "data-state")


def working_lines(page, execution_id: int) -> list[str]:
    """The agent's "working on..." lines, without the time each line starts with."""
    log = page.inner_text(f"#execution-{execution_id}-log")
    return [line.split(" ", 1)[1] for line in log.splitlines() if re.match(r"\d\d:\d\d:\d\d working", line)]


def test_a_run_is_watched_live_to_the_end_and_another_is_cancelled(page, symphony):
    log_in(page)
    # A second tab on the list, left alone: its rows must follow both runs by themselves.
    listing = page.context.new_page()
    listing.goto("/")
    listing.evaluate("window.__stillThisPage = true")
    listing.wait_for_selector("#live-status[data-state=open]")

    execution_id = submit_slow(page, {"seconds": 3, "steps": 3}, "Watched in the browser")
    url = page.url
    progress = f"#execution-{execution_id}-progress [role=progressbar]"
    steps = f"#execution-{execution_id}-steps li"

    # The bar and the steps move while the agent works, then the run completes: all without a reload.
    page.wait_for_function(
        f"document.querySelectorAll('{steps}').length >= 2 && document.querySelector('{progress}')"
        ".getAttribute('aria-valuenow') > 0"
    )
    seen_running = state_of(page, execution_id)
    page.wait_for_selector(f"#execution-{execution_id}-header [data-state=COMPLETED]", timeout=30_000)

    assert seen_running == "RUNNING"
    assert page.evaluate("window.__stillThisPage") is True and page.url == url
    assert page.get_attribute(progress, "aria-valuenow") == "100"
    assert page.locator(steps).all_inner_texts() == ["Step 1 of 3", "Step 2 of 3", "Step 3 of 3"]
    assert working_lines(page, execution_id) == ["working on step 1", "working on step 2", "working on step 3"]
    history = page.inner_text(f"#execution-{execution_id}-history")
    assert all(state in history for state in ("QUEUED", "PREPARING", "RUNNING", "COMPLETED"))
    assert '"steps": 3' in page.inner_text(f"#execution-{execution_id}-result")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Reconnecting replays the log after the id the page was rendered with; nothing shows twice.
    page.evaluate("window.__socket.reconnect()")
    page.wait_for_timeout(1000)
    assert working_lines(page, execution_id) == ["working on step 1", "working on step 2", "working on step 3"]

    # A second, long run: cancelled with the page's button.
    page.goto("/")
    second_id = submit_slow(page, {"seconds": 60, "steps": 3}, "Cancelled in the browser")
    page.wait_for_selector(f"#execution-{second_id}-header [data-state=RUNNING]", timeout=30_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"#execution-{second_id}-header button.danger")
    page.wait_for_selector(f"#execution-{second_id}-header [data-state=CANCELLED]")

    assert page.evaluate("window.__stillThisPage") is True
    assert page.locator(f"#execution-{second_id}-header button.danger").count() == 0
    row = symphony.db.executions()[second_id]
    assert row["state"] == "CANCELLED"
    listing.wait_for_selector(f"#execution-{second_id} .badge.state-cancelled")
    assert listing.locator(f"#execution-{execution_id} .badge.state-completed").count() == 1
    assert listing.evaluate("window.__stillThisPage") is True
    assert page.js_errors == [], "\n".join(page.js_errors)
