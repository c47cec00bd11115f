"""The Guidebook emulator's webhook sender: Guidebook's metrics-event POSTs, as Builder sends them.

Shape from `shared/reference/guidebook.md` ("Webhooks"): JSON `{"weid", "event", "properties",
"extra_metadata": null}` with the webhook's token in the `GB_WEBHOOK_SECURITY_TOKEN` header.
Guidebook documents no retry policy, so every event gets exactly one attempt. Deliveries run in
the background, one at a time in the order the events happened, over one `ClientSession` per app.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import aiohttp
import orjson
from aiohttp import web

__all__ = [
    "SANDBOX_WEBHOOK_TOKEN",
    "TOKEN_HEADER",
    "WebhookConfig",
    "WebhookSender",
]

# A public sandbox value, like the sandbox API keys; never a real secret.
SANDBOX_WEBHOOK_TOKEN = "sandbox-guidebook-webhook-token"  # noqa: S105
TOKEN_HEADER = "GB_WEBHOOK_SECURITY_TOKEN"  # noqa: S105 - a header name
DEFAULT_TIMEOUT_SECONDS = 2.0
MAX_WAIT_SECONDS = 30.0

JsonDict = dict[str, Any]


@dataclass
class WebhookConfig:
    """The one webhook Builder has configured; `None` lists mean every event / every account."""

    webhook_url: str | None = None
    webhook_token: str | None = SANDBOX_WEBHOOK_TOKEN
    webhook_events: list[str] | None = None
    webhook_accounts: list[int] | None = None
    webhook_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def keys(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    def updated(self, payload: Mapping[str, Any]) -> WebhookConfig:
        """A copy with `payload`'s keys (all of them webhook keys) applied; ValueError if bad."""
        changes: JsonDict = {}
        for key, value in payload.items():
            if key == "webhook_url":
                valid = value is None or (
                    isinstance(value, str) and value.startswith(("http://", "https://"))
                )
            elif key == "webhook_token":
                valid = value is None or (isinstance(value, str) and value != "")
            elif key == "webhook_events":
                valid = value is None or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)
                )
            elif key == "webhook_accounts":
                valid = value is None or (
                    isinstance(value, list) and all(type(v) is int for v in value)
                )
            elif key == "webhook_timeout_seconds":
                valid = (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                    and value > 0
                )
            else:
                raise ValueError(f"unknown config key: {key}")
            if not valid:
                raise ValueError(f"invalid value for {key}: {value!r}")
            changes[key] = list(value) if isinstance(value, list) else value
        return replace(self, **changes)

    def wants(self, event: str, account: int) -> bool:
        if self.webhook_url is None:
            return False
        if self.webhook_events is not None and event not in self.webhook_events:
            return False
        return self.webhook_accounts is None or account in self.webhook_accounts

    def as_json(self) -> JsonDict:
        return asdict(self)


@dataclass
class _Job:
    generation: int
    url: str
    token: str | None
    timeout: float
    entry: JsonDict = field(default_factory=dict)


class WebhookSender:
    """Queues events as they happen and POSTs them in order, logging each attempt."""

    def __init__(self, defaults: WebhookConfig) -> None:
        self.defaults = defaults
        self.config = replace(defaults)
        self.deliveries: list[JsonDict] = []
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._session: aiohttp.ClientSession | None = None
        self._generation = 0
        self._seq = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: one client session and one delivery worker per app."""
        self._session = aiohttp.ClientSession()
        worker = asyncio.create_task(self._work())
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        """Back to the configured defaults; queued deliveries are dropped, the log is cleared."""
        self._generation += 1
        self.config = replace(self.defaults)
        self.deliveries = []
        self._seq = 0

    # --- sending ---------------------------------------------------------------------------

    def send(self, event: str, account: int, properties: JsonDict) -> str | None:
        """Queues one event if the webhook wants it; its weid, or None when nothing is sent."""
        if not self.config.wants(event, account):
            return None
        weid = f"{properties.get('user_id') or account}-{uuid.uuid4()}"
        payload = {"weid": weid, "event": event, "properties": properties, "extra_metadata": None}
        self._enqueue(payload, redelivery=False)
        return weid

    def redeliver(self, weid: str | None) -> JsonDict | None:
        """Sends an earlier event again, same weid, to the webhook as configured now."""
        if self.config.webhook_url is None:
            raise ValueError("no webhook_url is configured")
        earlier = [entry for entry in self.deliveries if weid is None or entry["weid"] == weid]
        if not earlier:
            return None
        return self._enqueue(earlier[-1]["payload"], redelivery=True)

    def _enqueue(self, payload: JsonDict, *, redelivery: bool) -> JsonDict:
        url = self.config.webhook_url or ""  # callers check that one is configured
        self._seq += 1
        entry: JsonDict = {
            "seq": self._seq,
            "weid": payload["weid"],
            "event": payload["event"],
            "url": url,
            "redelivery": redelivery,
            "state": "pending",
            "status": None,
            "error": None,
            "payload": payload,
        }
        self.deliveries.append(entry)
        job = _Job(
            self._generation,
            url,
            self.config.webhook_token,
            self.config.webhook_timeout_seconds,
            entry,
        )
        self._queue.put_nowait(job)
        return entry

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                if job.generation == self._generation:
                    await self._deliver(job)
            finally:
                self._queue.task_done()

    async def _deliver(self, job: _Job) -> None:
        entry = job.entry
        session = self._session
        if session is None:  # pragma: no cover - the worker only runs inside the lifecycle
            return
        headers = {"Content-Type": "application/json"}
        if job.token is not None:
            headers[TOKEN_HEADER] = job.token
        try:
            async with session.post(
                job.url,
                data=orjson.dumps(entry["payload"]),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=job.timeout),
                allow_redirects=False,
            ) as response:
                await response.read()
                entry["status"] = response.status
                entry["state"] = "delivered" if 200 <= response.status < 300 else "failed"
        except TimeoutError:
            entry["state"], entry["error"] = "failed", f"timeout after {job.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            entry["state"], entry["error"] = "failed", f"{type(exc).__name__}: {exc}"

    async def settle(self, seconds: float) -> bool:
        """Waits until every queued delivery has been attempted; False after `seconds`."""
        try:
            await asyncio.wait_for(self._queue.join(), seconds)
        except TimeoutError:
            return False
        return True

    @property
    def pending(self) -> int:
        return sum(1 for entry in self.deliveries if entry["state"] == "pending")

    # --- control endpoints -----------------------------------------------------------------

    def install(self, app: web.Application, prefix: str) -> None:
        app.cleanup_ctx.append(self.lifecycle)
        app.router.add_get(prefix + "webhooks", self._log)
        app.router.add_post(prefix + "webhooks/redeliver", self._redeliver)

    async def _log(self, request: web.Request) -> web.Response:
        """`?wait=SECONDS` first lets the queue drain (at most MAX_WAIT_SECONDS)."""
        raw = request.query.get("wait")
        if raw is not None:
            try:
                wait = float(raw)
            except ValueError:
                return web.json_response({"error": "wait must be a number of seconds"}, status=400)
            if not math.isfinite(wait) or wait < 0:
                return web.json_response({"error": "wait must be a number of seconds"}, status=400)
            await self.settle(min(wait, MAX_WAIT_SECONDS))
        return web.json_response(
            {"deliveries": self.deliveries, "pending": self.pending, **self.config.as_json()}
        )

    async def _redeliver(self, request: web.Request) -> web.Response:
        weid: str | None = None
        if request.body_exists:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "body must be JSON"}, status=400)
            if not isinstance(body, dict) or not isinstance(body.get("weid"), str | None):
                return web.json_response({"error": 'expected {"weid": str}'}, status=400)
            weid = body.get("weid")
        try:
            entry = self.redeliver(weid)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        if entry is None:
            return web.json_response({"error": "no such event was sent"}, status=404)
        return web.json_response(entry, status=202)
