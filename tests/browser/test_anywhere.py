"""Symphony on a phone, by keyboard and in the dark: no page wider than a 390 px screen, "Log out"
one tap away behind the menu, a skip link, and the dark scheme when the system asks for it.

Real daphne, worker cluster and dispatcher processes; Debian's chromium (see test_live_page).
Assertions on layout and computed styles, no screenshots.
"""

import json
import re

import pytest

from tests.browser.test_live_page import browser, log_in, page  # noqa: F401 - fixtures and the login steps

pytestmark = [pytest.mark.browser, pytest.mark.process]

PHONE = {"width": 390, "height": 844}
TEXT = "A sentence long enough to wrap on a phone screen, with a_very_long_identifier_that_does_not_break_by_itself."


def page_width(tab) -> int:
    return tab.evaluate("document.documentElement.scrollWidth")


def luminance(css_colour: str) -> float:
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_no_page_is_wider_than_a_phone_and_log_out_is_reachable(page, symphony):  # noqa: F811
    page.set_viewport_size(PHONE)
    page.goto("/accounts/login/")
    widths = {"login": page_width(page)}
    log_in(page)
    widths["list"] = page_width(page)

    page.select_option("#id_agent", "text-stats")
    page.fill("#id_input", json.dumps({"text": TEXT}))
    page.fill("#id_name", "phone check")
    page.click("form#submit-form button[type=submit]")
    page.wait_for_url(re.compile(r"/executions/\d+/$"))
    page.wait_for_selector("[data-state=COMPLETED]", timeout=60_000)
    widths["detail"] = page_width(page)
    for name, path in (("workflows", "/workflows/"), ("tokens", "/tokens/")):
        page.goto(path)
        widths[name] = page_width(page)

    assert widths == dict.fromkeys(widths, widths["list"]) and widths["list"] <= PHONE["width"], widths
    # The menu is folded: "Log out" shows behind the Menu button, and works.
    page.goto("/")
    log_out = page.locator("header button:has-text('Log out')")
    assert not log_out.is_visible()
    page.click("header button.menu-toggle")
    assert page.get_attribute("header button.menu-toggle", "aria-expanded") == "true"
    assert log_out.is_visible()
    box = log_out.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    log_out.click()
    page.wait_for_url(re.compile(r"/accounts/login/"))


def test_the_keyboard_reaches_the_content_first(page, symphony):  # noqa: F811
    log_in(page)

    page.keyboard.press("Tab")
    skip = page.evaluate("[document.activeElement.className, getComputedStyle(document.activeElement).outlineStyle]")
    page.keyboard.press("Enter")

    assert skip == ["skip-link", "solid"]
    assert page.evaluate("document.activeElement.id") == "main"


def test_the_pages_follow_a_dark_system_setting(page, symphony):  # noqa: F811
    log_in(page)

    def colours() -> dict:
        return page.evaluate(
            """() => {
              const of = (selector, property) => getComputedStyle(document.querySelector(selector))[property];
              return {page: of('body', 'backgroundColor'), text: of('body', 'color'),
                      panel: of('.panel', 'backgroundColor'), field: of('#id_input', 'backgroundColor')};
            }"""
        )

    light = colours()
    page.emulate_media(color_scheme="dark")
    dark = colours()

    assert luminance(light["page"]) > 0.8 and luminance(light["text"]) < 0.3
    assert luminance(dark["page"]) < 0.15 and luminance(dark["panel"]) < 0.2 and luminance(dark["field"]) < 0.2
    assert luminance(dark["text"]) > 0.8
