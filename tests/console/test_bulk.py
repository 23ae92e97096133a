"""Bulk actions: everything a filter matches, or a selection, moved in batches on the server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from herald.console import jobs
from herald.states import TaskStatus
from tests.console.conftest import Console, shot, sign_in


@pytest.fixture
def small_batches() -> Iterator[None]:
    """Batches of 4, so a few dozen tasks take several (the job runs in this process)."""
    batch = jobs.BATCH
    jobs.BATCH = 4
    yield
    jobs.BATCH = batch


@pytest.mark.usefixtures("small_batches")
def test_bulk_resend_of_everything_a_filter_matches(page: Page, console: Console) -> None:
    failed = [
        console.create(client="billing", key=f"b{i}", status=TaskStatus.FAILED) for i in range(10)
    ]
    other_client = console.create(client="shop", key="s1", status=TaskStatus.FAILED)
    delivered = console.create(client="billing", key="d1", status=TaskStatus.DELIVERED)
    sign_in(page, console)

    page.goto("/console/tasks?client=billing&status=failed")
    page.get_by_label("Action").select_option("resend")
    page.get_by_role("button", name="On everything this filter matches…").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Resend all 10 failed tasks of billing?")
    expect(page.get_by_text("may be sent twice")).to_have_count(0)  # none is uncertain
    shot(page, "bulk-confirm")
    # Made after the confirmation was shown: not part of what the operator confirmed.
    late = console.create(client="billing", key="late", status=TaskStatus.FAILED)
    queued = console.queue_length()

    page.get_by_role("button", name=re.compile("^Resend all 10")).click()
    expect(page).to_have_url(re.compile(r"/console/bulk/[0-9a-f]{16}$"))
    expect(page.locator("#job-state")).to_have_text("done")
    expect(page.get_by_role("status")).to_contain_text("10 tasks changed")
    expect(page.locator("#job-moved")).to_have_text("10")
    shot(page, "bulk-progress")

    job_id = page.url.rsplit("/", 1)[1]
    for task_id in failed:
        task = console.get_task(task_id)
        assert (task["status"], task["failures"]) == ("pending", 0)
        last = console.events(task_id)[-1]
        assert (last["actor"], last["from_status"], last["reason"]) == (
            "operator:alice",
            "failed",
            "resend",
        )
        assert last["details"] == {"bulk": job_id}
    assert console.get_task(other_client)["status"] == "failed"
    assert console.get_task(late)["status"] == "failed"
    assert console.get_task(delivered)["status"] == "delivered"
    assert console.queue_length() == queued + 10
    batches = int(page.locator(".stats dd").nth(3).inner_text())
    assert batches >= 3  # 10 tasks in batches of 4


def test_bulk_cancel_of_a_selection(page: Page, console: Console) -> None:
    pending = [console.create(key=f"p{i}") for i in range(3)]
    done = console.create(key="d", status=TaskStatus.DELIVERED)
    sign_in(page, console)
    page.goto("/console/tasks")
    for task_id in (pending[0], pending[2], done):
        page.get_by_label(f"Select task {task_id}").check()
    page.get_by_label("Action").select_option("cancel")
    page.get_by_role("button", name="On selected tasks…").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Cancel 2 of the 3 selected tasks?")
    page.get_by_role("button", name="Cancel 2 of the 3 selected tasks").click()
    expect(page.get_by_role("status")).to_contain_text("2 tasks changed")
    statuses = [console.get_task(i)["status"] for i in (*pending, done)]
    assert statuses == ["cancelled", "pending", "cancelled", "delivered"]
