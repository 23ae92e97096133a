"""What an update means, read without a database: the commands, memberships and
migrations Herald acts on, and what it only stores."""

from __future__ import annotations

from typing import Any

import pytest

from herald.updates.read import Membership, Migrated, Start, Stop, read_update


def _message(text: str, chat_type: str = "private", chat_id: int = 42) -> dict[str, Any]:
    chat = {"id": chat_id, "type": chat_type}
    return {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": chat, "text": text}}


def _migration() -> dict[str, Any]:
    chat = {"id": -5, "type": "group"}
    return {"update_id": 9, "message": {"chat": chat, "migrate_to_chat_id": -1005}}


def _member(status: str, old: str = "member", **extra: Any) -> dict[str, Any]:
    return {
        "update_id": 8,
        "my_chat_member": {
            "chat": {"id": 42, "type": "private"},
            "date": 0,
            "old_chat_member": {"status": old},
            "new_chat_member": {"status": status, **extra},
        },
    }


@pytest.mark.parametrize(
    ("update", "effect"),
    [
        (_message("/start abc_-123"), Start("42", "abc_-123")),
        (_message("/start@shop_news_bot abc"), Start("42", "abc")),
        (_message("/start"), Start("42", None)),
        (_message("/stop"), Stop("42")),
        (_message("/start abc", chat_type="group", chat_id=-5), None),  # commands: private only
        (_message("please /stop"), None),
        (_message("thanks!"), None),
        (_member("kicked", until_date=0), Membership("42", True, "kicked")),
        (_member("left"), Membership("42", True, "left")),
        (_member("member", old="kicked"), Membership("42", False, "member")),
        (_member("administrator", old="left"), Membership("42", False, "administrator")),
        # Still there, or still gone: no recipient.blocked or .unblocked to report.
        (_member("member"), Membership("42", False, "member", changed=False)),
        (_member("administrator"), Membership("42", False, "administrator", changed=False)),
        (_member("left", old="kicked"), Membership("42", True, "left", changed=False)),
        (_member("restricted", is_member=True), Membership("42", False, "restricted", False)),
        (_member("restricted", is_member=False), None),
        (_migration(), Migrated("-5", "-1005")),
    ],
)
def test_effects(update: dict[str, Any], effect: object) -> None:
    read = read_update(update)
    assert read is not None
    assert read.effect == effect


def test_kinds_and_chats() -> None:
    read = read_update(_message("hi"))
    assert read is not None
    assert (read.update_id, read.kind, read.chat_id) == (7, "message", "42")
    query = read_update({"update_id": 3, "callback_query": {"message": {"chat": {"id": 9}}}})
    assert query is not None
    assert (query.kind, query.chat_id, query.effect) == ("callback_query", "9", None)
    poll = read_update({"update_id": 4, "poll": {"id": "x"}})
    assert poll is not None
    assert (poll.kind, poll.chat_id) == ("poll", None)


@pytest.mark.parametrize(
    "data",
    [[], "x", {}, {"update_id": "7"}, {"update_id": True}, {"update_id": -1}, {"update_id": 2**63}],
)
def test_what_is_not_an_update(data: Any) -> None:
    assert read_update(data) is None


@pytest.mark.parametrize(
    ("update", "forward", "command"),
    [
        (_message("thanks!"), True, None),
        (_message("/help"), True, "/help"),
        (_message("/help@shop_news_bot me"), True, "/help"),
        (_message("/order_42 now"), True, "/order_42"),
        (_message("please /help"), True, None),
        (_message("/ not a command"), True, None),
        (_message("/start abc", chat_type="group", chat_id=-5), True, "/start"),
        (_message("/start abc"), False, None),  # Herald's own commands: their own events
        (_message("/stop"), False, None),
        (_migration(), False, None),
        (_member("kicked"), False, None),
        ({"update_id": 5, "message": {"message_id": 3, "chat": {"id": 42}, "caption": "pic"}},
         True, None),
        ({"update_id": 6, "edited_message": {"chat": {"id": 42}, "text": "hi"}}, False, None),
        ({"update_id": 6, "message": {"text": "no chat"}}, False, None),
    ],
)  # fmt: skip
def test_messages_forwarded(update: dict[str, Any], forward: bool, command: str | None) -> None:
    """Which updates reach the recipients' clients as message.received, and the command."""
    read = read_update(update)
    assert read is not None
    assert (read.forward, read.command) == (forward, command)
