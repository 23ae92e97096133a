"""`herald dev` on a machine where nothing is configured: it runs, delivers, stops, keeps data.

One `herald dev` runs for the module (starting one costs seconds); the restart test stops
it and starts the next, which the module's teardown then stops.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import sys
import time
from asyncio.subprocess import PIPE
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald.emulator.remote import RemoteEmulator
from tests.ops.devrun import DevRun, until
from tests.support.processes import herald_env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("herald-dev")


@pytest.fixture(scope="module")
def runs(workdir: Path) -> Iterator[list[DevRun]]:
    """The dev runs of this module, newest last; all stopped at the end."""
    started = [DevRun.start(workdir / ".herald", cwd=workdir)]
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.stop()


def client(run: DevRun, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=run.api_url,
        headers={"Authorization": f"Bearer {token or run.token}"},
        timeout=10,
    )


def post_task(http: httpx.Client, chat_id: int, text: str, **headers: str) -> dict[str, Any]:
    response = http.post(
        "/api/tasks",
        json={"chat_id": chat_id, "text": text},
        headers={"Idempotency-Key": secrets.token_hex(8), **headers},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_status(http: httpx.Client, task_id: int, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        task: dict[str, Any] = http.get(f"/api/tasks/{task_id}").json()
        return task if task["status"] == status else None

    return until(check, 60, f"task {task_id} to be {status}")


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus page, keyed by name and sorted labels."""
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def count_tasks(http: httpx.Client, status: str) -> int:
    total, cursor = 0, None
    while True:
        params = {"status": status, "limit": "100"} | ({"cursor": cursor} if cursor else {})
        page = http.get("/api/tasks", params=params).json()
        total += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return total


async def test_a_person_subscribes_by_deep_link_on_a_bare_machine(runs: list[DevRun]) -> None:
    """The whole loop: a link, the emulator's person presses Start, `herald poll` (which
    dev mode runs) takes the update, the welcome and a task by recipient arrive."""
    run = runs[-1]
    user = 730_001  # a chat of its own: the module's other tests count their chats' messages
    with client(run) as http:
        link = http.post("/api/recipients/dev-user/link")
        assert link.status_code == 201, link.text
        async with RemoteEmulator(run.emulator_url) as emulator:
            await emulator.user_start(user, link.json()["code"])
            until(
                lambda: http.get("/api/recipients/dev-user").status_code == 200 or None,
                60,
                "the recipient to be bound",
            )
            task = http.post(
                "/api/tasks",
                json={"recipient": "dev-user", "text": "by recipient"},
                headers={"Idempotency-Key": secrets.token_hex(8)},
            )
            assert task.status_code == 201, task.text
            messages = await emulator.wait_messages(2, timeout=60, chat_id=user)
    assert messages[-1]["text"] == "by recipient"


async def test_metrics_count_the_deliveries(runs: list[DevRun]) -> None:
    run = runs[-1]
    gateway_before = scrape(run.api_url + "/metrics")
    worker_before = scrape(run.worker_metrics_url)
    chats = [710_001, 710_002, 710_003]  # one task a chat: the per-chat limit never waits

    missing_chat = 710_404  # Telegram answers 400 "chat not found": a permanent failure

    with client(run) as http:
        async with RemoteEmulator(run.emulator_url) as emulator:
            await emulator.set_missing(missing_chat)
            ids = [post_task(http, chat, f"metrics {chat}")["id"] for chat in chats]
            failed_id = post_task(http, missing_chat, "to nowhere")["id"]
            for chat in chats:
                await emulator.wait_messages(1, timeout=60, chat_id=chat)
        for task_id in ids:
            wait_status(http, task_id, "delivered")
        wait_status(http, failed_id, "failed")
        delivered_in_db = count_tasks(http, "delivered")
        failed_in_db = count_tasks(http, "failed")

    # The task gauges are read in the background (every 5 s): wait for a reading begun
    # after the counts above.
    counted_at = time.time()
    refreshed = ("herald_tasks_refreshed_timestamp_seconds", ())
    gateway = until(
        lambda: now if (now := scrape(run.api_url + "/metrics"))[refreshed] > counted_at else None,
        15,
        "the task gauges to be refreshed",
    )
    worker = scrape(run.worker_metrics_url)

    def delta(after: dict[Any, float], before: dict[Any, float], key: Any) -> float:
        return after[key] - before.get(key, 0.0)

    assert delta(gateway, gateway_before, ("herald_tasks_created_total", ())) == len(ids) + 1
    assert gateway[("herald_tasks", (("status", "delivered"),))] == delivered_in_db
    assert gateway[("herald_tasks", (("status", "failed"),))] == failed_in_db >= 1
    assert gateway[("herald_tasks", (("status", "pending"),))] == 0
    assert gateway[("herald_tasks_due", ())] == 0
    delivered = ("herald_deliveries_total", (("outcome", "delivered"),))
    assert delta(worker, worker_before, delivered) == len(ids)
    failed = ("herald_deliveries_total", (("outcome", "failed"),))
    assert delta(worker, worker_before, failed) == 1
    assert delta(worker, worker_before, ("herald_telegram_errors_total", (("code", "400"),))) == 1
    latency = ("herald_delivery_latency_seconds_count", ())
    assert delta(worker, worker_before, latency) == len(ids)


async def test_the_printed_pages_and_curl_example_work(runs: list[DevRun]) -> None:
    run = runs[-1]
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(run.api_url + "/docs")).status_code == 200
        # The console's one-click link: its page answers; the token is in the fragment.
        link = re.search(r"Console:\s+(\S+)", run.banner)
        assert link is not None
        assert link.group(1).startswith(run.api_url + "/console/sign-in#token=ey")
        assert "Sign in" in (await http.get(link.group(1))).text
        page = await http.get(run.emulator_url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # The commands exactly as printed, pasted into a shell (plus curl's status code).
    example = run.banner.split("Send a notification:\n", 1)[1].split("\n\n", 1)[0]
    example = example.replace("curl -sS", "curl -sS -w '\\n%{http_code}'")
    shell = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", example, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(shell.communicate(), 30)
    assert shell.returncode == 0, err
    body, status = out.decode().rsplit("\n", 1)
    assert status == "201"
    task = json.loads(body)
    async with RemoteEmulator(run.emulator_url) as emulator:
        [message] = await emulator.wait_messages(1, timeout=60, chat_id=task["chat_id"])
    assert message["text"] == "Hello from Herald"


async def test_dev_runs_unconfigured_delivers_and_keeps_tasks_across_restarts(
    runs: list[DevRun], workdir: Path
) -> None:
    first = runs[-1]
    request_id = f"ops-{secrets.token_hex(6)}"
    with client(first) as http:
        task = post_task(http, 720_001, "hello from dev mode", **{"X-Request-ID": request_id})
        async with RemoteEmulator(first.emulator_url) as emulator:
            [message] = await emulator.wait_messages(1, timeout=60, chat_id=720_001)
        assert message["text"] == "hello from dev mode"
        delivered = wait_status(http, task["id"], "delivered")
    assert delivered["telegram_message_id"] == message["message_id"]
    # The request's id reached the worker's log lines about this task.
    worker_lines = [
        line
        for line in first.log().splitlines()
        if "service=worker" in line and f"correlation_id={request_id}" in line
    ]
    assert worker_lines, first.log()[-3000:]

    children = first.descendants()
    assert len(children) >= 4  # redis, emulator, api, worker (and its processes)
    assert first.stop() == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
    assert not (workdir / ".herald" / "postgres" / "postmaster.pid").exists()

    second = DevRun.start(workdir / ".herald", cwd=workdir)
    runs.append(second)
    # The secret was kept: the first run's token still works.
    with client(second, token=first.token) as http:
        kept = http.get(f"/api/tasks/{task['id']}").json()
        assert kept["status"] == "delivered"
        assert kept["telegram_message_id"] == message["message_id"]
        after_restart = post_task(http, 720_002, "after the restart")
        async with RemoteEmulator(second.emulator_url) as emulator:
            await emulator.wait_messages(1, timeout=60, chat_id=720_002)
            wait_status(http, after_restart["id"], "delivered")
            # Nothing already delivered was sent again by the new run.
            assert [m["text"] for m in await emulator.messages()] == ["after the restart"]
    # A second `herald dev` on the same data refuses at once and harms nothing.
    rival = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", "dev", "--port", "0", "--emulator-port", "0",
        "--data-dir", str(workdir / ".herald"),
        cwd=workdir, env=herald_env(), stdout=PIPE, stderr=PIPE,
    )  # fmt: skip
    _, rival_err = await asyncio.wait_for(rival.communicate(), 60)
    assert rival.returncode == 1
    assert b"another herald dev is running" in rival_err
    with client(second) as http:
        assert http.get(f"/api/tasks/{task['id']}").status_code == 200

    # SIGTERM (a service manager's stop) is as clean as Ctrl-C.
    children = second.descendants()
    assert second.stop(signal.SIGTERM) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
