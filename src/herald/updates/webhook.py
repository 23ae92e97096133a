"""`herald webhook set --url URL` and `herald webhook delete`: where Telegram sends updates.

`set` calls setWebhook with HERALD_WEBHOOK_SECRET as `secret_token` (Telegram sends it
back in `X-Telegram-Bot-Api-Secret-Token`, which `POST /telegram/webhook` checks) and the
update types Herald needs (`ALLOWED_UPDATES`). `delete` removes the webhook, so that
`herald poll` can take updates by getUpdates instead (Telegram refuses getUpdates while a
webhook is set). `info` shows getWebhookInfo's answer (it never holds the secret).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from herald.config import Settings, get_settings
from herald.telegram.redact import redact
from herald.telegram.sender import make_bot

# Messages (/start, /stop, replies, a group's migration) and the bot's own membership
# (blocked, removed, back); nothing else is asked of Telegram.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
WEBHOOK_PATH = "/telegram/webhook"


async def set_webhook(settings: Settings, url: str, *, drop_pending: bool = False) -> None:
    bot = make_bot(settings, connections=1)
    try:
        await bot.set_webhook(
            url=url,
            secret_token=settings.webhook_secret,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=drop_pending,
        )
    finally:
        await bot.session.close()


async def delete_webhook(settings: Settings, *, drop_pending: bool = False) -> None:
    bot = make_bot(settings, connections=1)
    try:
        await bot.delete_webhook(drop_pending_updates=drop_pending)
    finally:
        await bot.session.close()


async def webhook_info(settings: Settings) -> str:
    bot = make_bot(settings, connections=1)
    try:
        info = await bot.get_webhook_info()
    finally:
        await bot.session.close()
    return info.model_dump_json(exclude_none=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="herald webhook", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    put = sub.add_parser("set", help="point Telegram at the gateway's /telegram/webhook")
    put.add_argument("--url", required=True, help=f"the public https URL of {WEBHOOK_PATH}")
    put.add_argument("--drop-pending", action="store_true", help="forget updates not sent yet")
    remove = sub.add_parser("delete", help="remove the webhook (then `herald poll` works)")
    remove.add_argument("--drop-pending", action="store_true")
    sub.add_parser("info", help="getWebhookInfo")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.action == "set" and not settings.webhook_secret:
        print(
            "herald webhook: HERALD_WEBHOOK_SECRET must be set (`openssl rand -hex 32`);"
            " the gateway needs the same value",
            file=sys.stderr,
        )
        return 2
    try:
        if args.action == "set":
            asyncio.run(set_webhook(settings, args.url, drop_pending=args.drop_pending))
            print(f"webhook set: {args.url}")
        elif args.action == "delete":
            asyncio.run(delete_webhook(settings, drop_pending=args.drop_pending))
            print("webhook deleted")
        else:
            print(asyncio.run(webhook_info(settings)))
    except Exception as exc:  # aiogram's errors: Telegram's refusal or the network
        print(f"herald webhook: {redact(str(exc), (settings.bot_token,))}", file=sys.stderr)
        return 1
    return 0
