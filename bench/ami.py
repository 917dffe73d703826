"""A minimal asyncio AMI client: log in, send actions, follow app_queue's events."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

Message = dict[str, str]


class AmiError(Exception):
    pass


class Ami:
    """One AMI session (the bench's own user: read and write `agent` only)."""

    def __init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self._task: asyncio.Task[None] | None = None
        self.handlers: list[Callable[[Message, float], None]] = []

    async def connect(self, host: str, port: int, user: str, secret: str) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port)
        await self._reader.readline()  # "Asterisk Call Manager/x.y"
        self._task = asyncio.create_task(self._read())
        r = await self.action("Login", Username=user, Secret=secret, Events="agent")
        if r.get("Response") != "Success":
            raise AmiError(f"AMI login refused: {r.get('Message')}")

    async def close(self) -> None:
        if self._writer is not None:
            try:
                await self.action("Logoff", timeout=3)
            except (AmiError, OSError, TimeoutError):
                pass
            self._writer.close()
        if self._task is not None:
            self._task.cancel()

    async def action(self, name: str, timeout: float = 10, **fields: str) -> Message:
        if self._writer is None:
            raise AmiError("not connected")
        action_id = str(next(self._ids))
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[action_id] = fut
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiting.pop(action_id, None)

    async def _read(self) -> None:
        assert self._reader is not None
        msg: Message = {}
        while True:
            line = await self._reader.readline()
            if not line:
                for fut in self._waiting.values():
                    if not fut.done():
                        fut.set_exception(AmiError("AMI connection closed"))
                return
            text = line.decode(errors="replace").rstrip("\r\n")
            if text:
                key, _, value = text.partition(":")
                msg[key.strip()] = value.strip()
                continue
            if not msg:
                continue
            now = time.time()
            if "Response" in msg and msg.get("ActionID") in self._waiting:
                fut = self._waiting[msg["ActionID"]]
                if not fut.done():
                    fut.set_result(msg)
            elif "Event" in msg:
                for handler in self.handlers:
                    handler(msg, now)
            msg = {}
