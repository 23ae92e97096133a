"""Finding tasks and acting on them, one at a time: each result checked through the API."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from herald.states import TaskStatus
from tests.console.conftest import Console, shot, sign_in


def _ids_shown(page: Page) -> list[int]:
    return [
        int(t) for t in page.locator("table.tasks tbody td[data-label=Task] a").all_inner_texts()
    ]


def test_filter_the_list_as_the_api_does(page: Page, console: Console) -> None:
    failed_billing = [
        console.create(client="billing", key=f"fb{i}", status=TaskStatus.FAILED) for i in range(3)
    ]
    console.create(client="shop", key="fs1", status=TaskStatus.FAILED, chat_id=777)
    delivered = console.create(client="shop", key="order-1042", status=TaskStatus.DELIVERED)
    console.create(client="billing", key="p1", chat_id="@herald_news")
    sign_in(page, console)

    page.get_by_role("link", name="Tasks").click()
    assert _ids_shown(page) == console.list_ids()  # every task, newest first, as the API

    page.get_by_label("Status").select_option("failed")
    page.get_by_label("Producer (client)").fill("billing")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(
        page.get_by_role("heading", name="Failed tasks of billing, newest first")
    ).to_be_visible()
    assert _ids_shown(page) == sorted(failed_billing, reverse=True)
    shot(page, "tasks")

    page.goto("/console/tasks?chat_id=777")
    assert _ids_shown(page) == console.list_ids(chat_id="777")
    page.goto("/console/tasks?chat_id=%40herald_news")
    assert _ids_shown(page) == console.list_ids(chat_id="@herald_news")

    # By creation time (UTC, as the form says), and by idempotency key without a client.
    created = console.get_task(delivered)["created_at"][:19]
    page.goto(f"/console/tasks?created_after={created}&status=delivered")
    assert _ids_shown(page) == [delivered]
    page.goto("/console/tasks?idempotency_key=order-1042")
    assert _ids_shown(page) == [delivered]

    page.goto("/console/tasks?chat_id=not+a+chat")
    expect(page.get_by_text("an integer or @channelusername")).to_be_visible()


def test_pages_follow_the_api_cursor(page: Page, console: Console) -> None:
    ids = [console.create(key=f"k{i:02}", status=TaskStatus.DELIVERED) for i in range(55)]
    sign_in(page, console)
    page.goto("/console/tasks?status=delivered")
    first = _ids_shown(page)
    page.get_by_role("link", name="Older").click()
    second = _ids_shown(page)
    assert first + second == sorted(ids, reverse=True)
    # The same with a creation-time bound (listed by creation time, then id).
    page.goto("/console/tasks?created_after=2000-01-01T00:00")
    first = _ids_shown(page)
    page.get_by_role("link", name="Older").click()
    assert first + _ids_shown(page) == sorted(ids, reverse=True)


def test_open_a_task_its_text_rendered_safely(page: Page, console: Console) -> None:
    text = (
        "<b>Order 1042</b> has <i>shipped</i> &lt;script&gt;window.pwned=1&lt;/script&gt;"
        ' <a href="https://example.com/t/1042">track</a>'
    )
    task_id = console.create(
        key="rich",
        status=TaskStatus.DELIVERED,
        body={
            "text": text,
            "parse_mode": "HTML",
            "buttons": [[{"text": "Track", "url": "https://example.com/t/1042"}]],
            "metadata": {"order": 1042},
        },
    )
    sign_in(page, console)
    page.goto(f"/console/tasks/{task_id}")
    bubble = page.locator(".bubble")
    expect(bubble.locator("strong")).to_have_text("Order 1042")
    expect(bubble.locator("em")).to_have_text("shipped")
    expect(bubble).to_contain_text("<script>window.pwned=1</script>")  # shown, not run
    assert page.evaluate("window.pwned") is None
    assert bubble.locator("script").count() == 0
    expect(bubble.locator("a")).to_have_attribute("href", "https://example.com/t/1042")
    expect(page.locator(".keyboard")).to_contain_text("Track")
    expect(page.get_by_text("7000", exact=True)).to_be_visible()  # Telegram's message_id
    trail = page.get_by_role("region", name="Audit trail")
    for event in console.events(task_id):
        expect(trail).to_contain_text(f"{event['from_status'] or 'new'} → {event['to_status']}")
    expect(trail).to_contain_text("worker:test-1")
    expect(page.locator("pre.json")).to_contain_text('"order": 1042')
    shot(page, "task")


def test_cancel_a_pending_task(page: Page, console: Console) -> None:
    task_id = console.create(key="to-cancel")
    sign_in(page, console)
    page.goto(f"/console/tasks/{task_id}")
    page.get_by_role("link", name="Cancel…").click()
    expect(page.get_by_role("heading", name=f"Cancel task {task_id}?")).to_be_visible()
    expect(page.get_by_text("The task will not be sent")).to_be_visible()
    shot(page, "confirm-cancel")
    page.get_by_label("Reason, for the audit trail (optional)").fill("customer left")
    page.get_by_role("button", name=f"Cancel task {task_id}").click()
    expect(page.get_by_role("status")).to_contain_text("The task is cancelled now")

    assert console.get_task(task_id)["status"] == "cancelled"
    last = console.events(task_id)[-1]
    assert (last["actor"], last["from_status"], last["to_status"], last["reason"]) == (
        "operator:alice",
        "pending",
        "cancelled",
        "customer left",
    )


def test_resend_a_failed_task(page: Page, console: Console) -> None:
    task_id = console.create(key="to-resend", status=TaskStatus.FAILED)
    queued = console.queue_length()
    sign_in(page, console)
    page.goto(f"/console/tasks/{task_id}/resend")
    expect(page.get_by_text("goes to the workers at once")).to_be_visible()
    expect(page.get_by_text("may be sent twice")).to_have_count(0)  # failed: certainly not sent
    page.get_by_role("button", name=f"Resend task {task_id}").click()
    expect(page.get_by_role("status")).to_contain_text("The task is pending now")

    task = console.get_task(task_id)
    assert (task["status"], task["failures"]) == ("pending", 0)
    assert console.queue_length() == queued + 1  # handed to the workers after the commit
    assert console.events(task_id)[-1]["actor"] == "operator:alice"


def test_resending_an_uncertain_task_warns_of_a_duplicate(page: Page, console: Console) -> None:
    task_id = console.create(key="unsure", status=TaskStatus.UNCERTAIN)
    sign_in(page, console)
    page.goto(f"/console/tasks/{task_id}/resend")
    expect(page.get_by_role("alert")).to_contain_text("may deliver the message twice")
    shot(page, "confirm-resend-uncertain")


def test_a_task_that_moved_meanwhile_is_not_changed(page: Page, console: Console) -> None:
    task_id = console.create(key="raced")
    sign_in(page, console)
    page.goto(f"/console/tasks/{task_id}/cancel")
    console.http.delete(f"/api/tasks/{task_id}", headers=console.api("bob", "tasks:manage"))
    page.get_by_role("button", name=f"Cancel task {task_id}").click()
    expect(page.get_by_role("alert")).to_contain_text("is cancelled now")
    actors = [e["actor"] for e in console.events(task_id)]
    assert actors == ["client:billing", "operator:bob"]  # alice changed nothing


def test_resolve_uncertain_tasks_one_after_another(page: Page, console: Console) -> None:
    first = console.create(key="u1", status=TaskStatus.UNCERTAIN, chat_id=9001)
    second = console.create(key="u2", status=TaskStatus.UNCERTAIN, chat_id=9002)
    sign_in(page, console)
    page.get_by_role("link", name="Resolve uncertain").click()
    expect(
        page.get_by_role("heading", name=re.compile(f"Task {first} to chat 9001"))
    ).to_be_visible()
    expect(page.get_by_text("2 uncertain tasks in all")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("sending → uncertain")
    shot(page, "resolve")

    page.get_by_label("Its message_id, if you see it (optional)").fill("555")
    page.locator("body").click()  # focus out of the field: the keys are shortcuts again
    page.keyboard.press("d")
    expect(
        page.get_by_role("heading", name=re.compile(f"Task {second} to chat 9002"))
    ).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"Task {first}: mark delivered")
    page.keyboard.press("f")
    expect(page.get_by_text("Nothing left to decide")).to_be_visible()

    one, two = console.get_task(first), console.get_task(second)
    assert (one["status"], one["telegram_message_id"]) == ("delivered", 555)
    assert two["status"] == "failed"
    assert console.events(second)[-1]["actor"] == "operator:alice"


def test_a_tasks_status_callbacks_show_on_its_page(page: Page, console: Console) -> None:
    # Its producer has an endpoint: the delivery wrote a task.delivered event, whose first
    # attempt was refused with a 503.
    console.run(
        console.pool.execute(
            "INSERT INTO callback_endpoints (client, url, hosts, secret, source)"
            " VALUES ('billing', 'https://billing.internal/h', '{billing.internal}',"
            " 'whsec_never_shown', 'api')"
        )
    )
    task_id = console.create(key="told", status=TaskStatus.DELIVERED)
    console.run(
        console.pool.execute(
            "WITH e AS (UPDATE callback_events SET attempts = 1,"
            " next_attempt_at = now() + interval '5 seconds' WHERE task_id = $1 RETURNING id)"
            " INSERT INTO callback_attempts (event_id, attempt, worker, status_code, latency_ms,"
            " error) SELECT id, 1, 'worker:test-1', 503, 12.5, 'HTTP 503' FROM e",
            task_id,
        )
    )
    quiet = console.create(key="untold", client="shop", status=TaskStatus.DELIVERED)
    sign_in(page, console)
    page.goto(f"/console/tasks/{task_id}")
    told = page.get_by_role("region", name="Status callbacks")
    expect(told).to_contain_text("task.delivered · pending · 1 attempt · last: HTTP 503")
    expect(told).to_contain_text(f"msg_{task_id}_1")
    expect(told).to_contain_text("next attempt")
    assert "whsec_never_shown" not in page.content()
    page.goto(f"/console/tasks/{quiet}")  # no endpoint for its client: no section
    expect(page.get_by_role("region", name="Audit trail")).to_be_visible()
    assert page.get_by_role("region", name="Status callbacks").count() == 0
