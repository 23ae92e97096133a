"""Built to last: `/docs` without internet, no inline script anywhere, 360 px, labels."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from herald.states import TaskStatus
from tests.console.conftest import Console, shot, sign_in


def test_api_docs_render_with_nothing_from_another_origin(page: Page, console: Console) -> None:
    requests: list[str] = []
    complaints: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: complaints.append(message.text))
    page.goto("/docs")
    # Swagger UI built its page: the API's title and its operations.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Herald")
    expect(page.locator(".opblock").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/tasks/batch")).to_be_visible()
    shot(page, "api-docs", full_page=False)
    assert requests
    assert [url for url in requests if not url.startswith(console.url)] == []
    assert [c for c in complaints if "Content Security Policy" in c] == []


def test_no_inline_script_runs_and_the_policy_says_so(page: Page, console: Console) -> None:
    task_id = console.create(
        key="xss",
        status=TaskStatus.FAILED,
        body={"text": '<img src=x onerror="window.pwned=1"> "><script>window.pwned=2</script>'},
    )
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, console)
    for path in ("/console", "/console/tasks", f"/console/tasks/{task_id}", "/console/resolve"):
        response = page.goto(path)
        assert response is not None
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["cache-control"] == "no-store"
        # Every script of the page is a file of the console's own origin.
        sources = page.eval_on_selector_all("script", "els => els.map(e => e.src)")
        assert sources
        assert all(s.startswith(f"{console.url}/console/static/") for s in sources)
    expect(page.locator(".bubble")).to_have_count(0)  # the resolve page: nothing uncertain
    page.goto(f"/console/tasks/{task_id}")
    expect(page.locator(".bubble")).to_contain_text("<script>window.pwned=2</script>")
    assert page.evaluate("window.pwned") is None
    assert violations == []


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"{page.url} is {width} px wide at 360"


def test_works_at_360_px_with_labels_and_a_keyboard(page: Page, console: Console) -> None:
    task_id = console.create(
        key="narrow",
        status=TaskStatus.UNCERTAIN,
        body={"text": "A long line " * 20 + "https://example.com/" + "x" * 120},
    )
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, console)
    _no_sideways_scroll(page)
    shot(page, "overview-360")
    for path in ("/console/tasks", f"/console/tasks/{task_id}", "/console/resolve"):
        page.goto(path)
        _no_sideways_scroll(page)
        # Every field a person fills has a label a screen reader reads.
        unlabelled = page.eval_on_selector_all(
            "input:not([type=hidden]), select, textarea",
            "els => els.filter(e => !e.labels.length && !e.getAttribute('aria-label'))"
            ".map(e => e.outerHTML)",
        )
        assert unlabelled == []
    shot(page, "resolve-360")
    page.goto("/console/tasks")
    shot(page, "tasks-360")
    # The first Tab stop skips to the content; the next ones follow the page's order.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Status")).to_be_focused()
    assert re.search(r"#main$", page.url)
