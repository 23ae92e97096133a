"""A producer's callback endpoint for the benchmarks, in a process of its own.

    .venv/bin/python bench/callback_receiver.py --port P --secret whsec_... --out log.jsonl
        [--rate-500 0.1] [--rate-timeout 0.05] [--rate-drop 0.02] [--sleep 3] [--seed 7]

Every request is verified with the `standardwebhooks` package (as a producer would) and
then meets one seeded fate: a 500, no answer for `--sleep` seconds (past the sender's
timeout), the connection dropped after the body was read, or a 200. One JSON line per
request goes to `--out`: webhook-id, task id, seq, type, fate, whether the signature
verified, and a hash of the body (a retry must carry the same one). Prints `listening`
once it accepts connections; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--rate-timeout", type=float, default=0.0)
    parser.add_argument("--rate-drop", type=float, default=0.0)
    parser.add_argument("--sleep", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    webhook = Webhook(args.secret)
    draw = random.Random(args.seed)
    out = open(args.out, "a", buffering=1)  # noqa: ASYNC230, SIM115 - a line per request
    bounds = [
        (args.rate_500, "500"),
        (args.rate_500 + args.rate_timeout, "timeout"),
        (args.rate_500 + args.rate_timeout + args.rate_drop, "drop"),
    ]

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            event: Any = webhook.verify(body, dict(request.headers))
            verified = True
        except WebhookVerificationError:
            event, verified = json.loads(body), False
        x = draw.random()
        fate = next((name for bound, name in bounds if x < bound), "ok")
        data = event.get("data", {})
        line = {
            "id": request.headers.get("webhook-id"),
            "task": data.get("task_id"),
            "seq": data.get("seq"),
            "type": event.get("type"),
            "status": data.get("status"),
            "fate": fate,
            "verified": verified,
            "body": hashlib.sha256(body).hexdigest()[:16],
        }
        out.write(json.dumps(line) + "\n")
        if fate == "500":
            return web.Response(status=500, text="no")
        if fate == "timeout":
            await asyncio.sleep(args.sleep)
        elif fate == "drop":
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError("dropped")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024).start()
    print("listening", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    out.close()


if __name__ == "__main__":
    asyncio.run(serve(parse_args()))
