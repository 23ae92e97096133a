"""What the server refuses whatever the page shows: read-only operators, forged forms."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from herald.devprocess import free_port
from herald.states import TaskStatus
from tests.console.conftest import Console, shot, sign_in


def test_a_read_only_operator_sees_everything_and_changes_nothing(
    page: Page, console: Console
) -> None:
    pending = console.create(key="p")
    uncertain = console.create(key="u", status=TaskStatus.UNCERTAIN)
    sign_in(page, console, scopes="tasks:read")
    expect(page.locator("header .role")).to_have_text("read-only")

    page.goto(f"/console/tasks/{pending}/cancel")
    expect(page.get_by_text("the server will refuse this")).to_be_visible()
    page.get_by_role("button", name=f"Cancel task {pending}").click()
    expect(page.get_by_role("heading", name="Read-only")).to_be_visible()
    assert page.evaluate("document.readyState") == "complete"
    shot(page, "read-only-refused")

    page.goto("/console/resolve")
    page.keyboard.press("d")
    expect(page.get_by_role("heading", name="Read-only")).to_be_visible()

    # The list offers no bulk form; a hand-made one with a valid token is refused too.
    page.goto("/console/tasks")
    expect(page.get_by_role("button", name="On selected tasks…")).to_have_count(0)
    status = page.evaluate(
        """async () => {
            const csrf = document.querySelector('header input[name=csrf]').value;
            const body = new URLSearchParams({csrf, action: 'cancel', scope: 'filter'});
            return (await fetch('/console/bulk', {method: 'POST', body})).status;
        }"""
    )
    assert status == 403
    assert console.get_task(pending)["status"] == "pending"
    assert console.get_task(uncertain)["status"] == "uncertain"
    assert [e["actor"] for e in console.events(pending)] == ["client:billing"]


def _post(page: Page, path: str, fields: dict[str, str]) -> int:
    status: int = page.evaluate(
        """async ([path, fields]) => {
            const response = await fetch(path, {method: 'POST', body: new URLSearchParams(fields)});
            return response.status;
        }""",
        [path, fields],
    )
    return status


def test_a_form_without_the_session_token_is_refused(page: Page, console: Console) -> None:
    task_id = console.create(key="victim")
    sign_in(page, console)
    page.goto(f"/console/tasks/{task_id}")
    path = f"/console/tasks/{task_id}/cancel"
    assert _post(page, path, {"reason": "forged"}) == 403
    assert _post(page, path, {"csrf": "guessed", "reason": "forged"}) == 403
    assert console.get_task(task_id)["status"] == "pending"
    # The same request with the page's token goes through: the token is what decided.
    csrf = page.locator("header input[name=csrf]").input_value()
    assert _post(page, path, {"csrf": csrf}) == 200  # after the redirect to the task
    assert console.get_task(task_id)["status"] == "cancelled"


@pytest.fixture
def other_site() -> Iterator[tuple[str, dict[str, str]]]:
    """A page on another origin (same host, another port) that serves `pages[path]`."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()
    server.server_close()


def test_a_form_posted_from_another_site_is_refused(
    page: Page, console: Console, other_site: tuple[str, dict[str, str]]
) -> None:
    task_id = console.create(key="victim")
    sign_in(page, console)
    # Even with the session's real CSRF token (as if it had leaked), the Origin decides.
    csrf = page.locator("header input[name=csrf]").input_value()
    origin, pages = other_site
    pages["/attack"] = f"""<!doctype html><form method="post"
        action="{console.url}/console/tasks/{task_id}/cancel">
        <input name="csrf" value="{csrf}"><input name="reason" value="forged"></form>
        <script>document.forms[0].submit()</script>"""
    page.goto(f"{origin}/attack")
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    expect(page.get_by_text("sent from another site")).to_be_visible()
    assert console.get_task(task_id)["status"] == "pending"
    assert [e["actor"] for e in console.events(task_id)] == ["client:billing"]
