"""Blocked, gone, migrated, stopped: what Herald remembers of a chat spares the sends that
cannot arrive, and forgets it when the person comes back."""

from __future__ import annotations

import orjson

from tests.recipients.conftest import BOT_ID, SECRET, Herald, eventually


async def test_a_403_blocks_the_chat_then_no_request_then_start_unblocks(herald: Herald) -> None:
    await herald.set_webhook()
    user = 5101
    await herald.bind("dave", user)
    herald.tg.block_chat(user)  # blocked silently: Herald learns it from the 403

    first = (await herald.post_task("t1", recipient="dave", text="one")).json()
    await herald.deliver()
    first = await herald.task(first["id"])
    assert (first["status"], first["last_error_code"]) == ("failed", 403)
    assert (await herald.recipient("dave"))["state"] == "blocked"  # type: ignore[index]
    sends = herald.sends_to(user)

    second = await herald.post_task("t2", recipient="dave", text="two")
    assert second.status_code == 201
    assert (second.json()["status"], second.json()["last_error"]) == (
        "failed",
        "recipient_blocked",
    )
    by_chat = await herald.post_task("t3", chat_id=user, text="three")
    assert by_chat.json()["status"] == "failed"
    assert await herald.deliver() == 0
    assert herald.sends_to(user) == sends  # no request to Telegram for either

    # The person presses Start again (Telegram unblocks the bot for them).
    herald.tg.user_start(user, bot_id=BOT_ID)
    await eventually(lambda: _state_is(herald, "dave", "active"))
    third = (await herald.post_task("t4", recipient="dave", text="four")).json()
    assert third["status"] == "pending"
    await herald.deliver()
    assert (await herald.task(third["id"]))["status"] == "delivered"
    assert herald.tg.messages(user)[-1]["text"] == "four"


async def _state_is(herald: Herald, external_id: str, state: str) -> bool:
    return await herald.state(external_id) == state


async def test_my_chat_member_blocks_and_unblocks(herald: Herald) -> None:
    await herald.set_webhook()
    user = 5201
    await herald.bind("erin", user)
    herald.tg.user_block(user, bot_id=BOT_ID)
    await eventually(lambda: _state_is(herald, "erin", "blocked"))
    refused = (await herald.post_task("b1", recipient="erin", text="x")).json()
    assert (refused["status"], refused["last_error"]) == ("failed", "recipient_blocked")
    assert await herald.deliver() == 0
    assert herald.sends_to(user) == 1  # the welcome only

    herald.tg.user_unblock(user, bot_id=BOT_ID)
    await eventually(lambda: _state_is(herald, "erin", "active"))
    accepted = (await herald.post_task("b2", recipient="erin", text="back")).json()
    await herald.deliver()
    assert (await herald.task(accepted["id"]))["status"] == "delivered"


async def test_a_group_migration_moves_pending_tasks_once(herald: Herald) -> None:
    await herald.set_webhook()
    group, supergroup = -5301, -1000000005301
    pending = [
        (await herald.post_task(f"g{i}", chat_id=group, text=f"m{i}")).json()["id"]
        for i in range(3)
    ]
    herald.tg.migrate_chat(group, supergroup, bot_id=BOT_ID)
    await eventually(lambda: herald.count("tasks", f"migrated_chat_id = '{supergroup}'"), within=10)
    # The update again (Telegram retrying) moves nothing more.
    [update] = [
        u
        for u in herald.tg.updates(BOT_ID)["delivered"]
        if u.get("message", {}).get("migrate_to_chat_id")
    ]
    before = await herald.pool.fetch("SELECT id, updated_at FROM tasks ORDER BY id")
    again = await herald.client.post(
        "/telegram/webhook",
        content=orjson.dumps(update),
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert again.status_code == 200
    assert await herald.pool.fetch("SELECT id, updated_at FROM tasks ORDER BY id") == before

    later = (await herald.post_task("g-later", chat_id=group, text="later")).json()["id"]
    assert await herald.deliver() == 4
    for task_id in [*pending, later]:
        assert (await herald.task(task_id))["status"] == "delivered"
    assert [m["text"] for m in herald.tg.messages(supergroup)] == ["m0", "m1", "m2", "later"]
    assert herald.sends_to(group) == 0  # none went to the old group first


async def test_a_migration_learnt_from_a_send_moves_the_other_pending_tasks(
    herald: Herald,
) -> None:
    group, supergroup = -5401, -1000000005401
    herald.tg.migrate_chat(group, supergroup, bot_id=BOT_ID)  # no webhook: Herald sends first
    ids = [
        (await herald.post_task(f"s{i}", chat_id=group, text=f"s{i}")).json()["id"]
        for i in range(3)
    ]
    assert await herald.deliver() == 4  # one 400 with migrate_to_chat_id, then three sends
    assert herald.sends_to(group) == 1
    assert len(herald.tg.messages(supergroup)) == 3
    assert all([(await herald.task(i))["status"] == "delivered" for i in ids])


async def test_stop_unsubscribes_and_start_resubscribes(herald: Herald) -> None:
    await herald.set_webhook()
    user = 5501
    await herald.bind("frank", user)
    herald.tg.user_send(user, "/stop", bot_id=BOT_ID)
    await eventually(lambda: _state_is(herald, "frank", "unsubscribed"))
    stopped = (await herald.post_task("u1", recipient="frank", text="x")).json()
    assert (stopped["status"], stopped["last_error"]) == ("failed", "recipient_unsubscribed")
    assert await herald.deliver() == 0
    assert herald.sends_to(user) == 1  # the welcome only

    herald.tg.user_send(user, "/start", bot_id=BOT_ID)
    await eventually(lambda: _state_is(herald, "frank", "active"))
    again = (await herald.post_task("u2", recipient="frank", text="welcome back")).json()
    await herald.deliver()
    assert (await herald.task(again["id"]))["status"] == "delivered"

    # Unbound: tasks naming it are refused until it links again.
    assert (await herald.client.delete("/api/recipients/frank")).status_code == 200
    assert (await herald.post_task("u3", recipient="frank", text="x")).status_code == 422
