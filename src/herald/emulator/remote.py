"""Drive an emulator running in another process (`herald emulator`, `herald dev`).

The same methods as `EmulatorHandle`, async, over the control API:

    async with RemoteEmulator("http://127.0.0.1:8081") as tg:
        await tg.wait_messages(1)
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp


class RemoteEmulatorError(RuntimeError):
    """The control API refused a request."""


class RemoteEmulator:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RemoteEmulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - an HTTP total timeout
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self._session.request(
            method,
            f"{self.base_url}{path}",
            params=query,
            json=json,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            data = await response.json()
        if response.status == 408:
            raise TimeoutError(data["error"]["message"])
        if response.status != 200:
            raise RemoteEmulatorError(f"{response.status}: {data}")
        return data

    async def messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        data = await self._request("GET", "/control/messages", params={"chat_id": chat_id})
        return list(data["messages"])

    async def received(self) -> list[dict[str, Any]]:
        return list((await self._request("GET", "/control/received"))["received"])

    async def stats(self) -> dict[str, int]:
        return dict(await self._request("GET", "/control/stats"))

    async def wait_messages(
        self,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - the interface tests use
        chat_id: int | None = None,
    ) -> list[dict[str, Any]]:
        data = await self._request(
            "GET",
            "/control/messages/wait",
            params={"count": n, "timeout": timeout, "chat_id": chat_id},
            timeout=timeout + 5.0,
        )
        return list(data["messages"])

    async def reset(self) -> None:
        await self._request("POST", "/control/reset")

    async def block_chat(self, chat_id: int) -> None:
        await self._request("POST", f"/control/chats/{chat_id}/block")

    async def migrate_chat(self, chat_id: int, new_chat_id: int, bot_id: int | None = None) -> None:
        body: dict[str, Any] = {"new_chat_id": new_chat_id}
        if bot_id is not None:
            body["bot_id"] = bot_id
        await self._request("POST", f"/control/chats/{chat_id}/migrate", json=body)

    async def _user(self, user_id: int, action: str, bot_id: int | None, **body: Any) -> Any:
        if bot_id is not None:
            body["bot_id"] = bot_id
        return await self._request("POST", f"/control/users/{user_id}/{action}", json=body)

    async def user_start(
        self, user_id: int, code: str | None = None, bot_id: int | None = None
    ) -> dict[str, Any]:
        return dict((await self._user(user_id, "start", bot_id, code=code))["update"])

    async def user_send(
        self, user_id: int, text: str, bot_id: int | None = None, reply_to: int | None = None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"text": text}
        if reply_to is not None:
            fields["reply_to_message_id"] = reply_to
        return dict((await self._user(user_id, "send", bot_id, **fields))["update"])

    async def user_block(self, user_id: int, bot_id: int | None = None) -> None:
        await self._user(user_id, "block", bot_id)

    async def user_unblock(self, user_id: int, bot_id: int | None = None) -> None:
        await self._user(user_id, "unblock", bot_id)

    async def updates(self, bot_id: int | None = None) -> dict[str, Any]:
        return dict(await self._request("GET", "/control/updates", params={"bot_id": bot_id}))

    async def set_missing(self, chat_id: int) -> None:
        await self._request("POST", f"/control/chats/{chat_id}/missing")

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault settings; returns them as the emulator now has them."""
        return dict(await self._request("POST", "/control/faults", json=faults))

    async def set_limits(self, **limits: Any) -> dict[str, Any]:
        """Replace the limit settings; returns them as the emulator now has them."""
        return dict(await self._request("POST", "/control/limits", json=limits))
