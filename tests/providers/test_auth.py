"""Token caching: one fetch shared by concurrent requests, renewal, and dropping refused tokens."""

from __future__ import annotations

import asyncio
import time

from sessiongraph.providers._auth import BearerToken, TokenAuth


def fetcher(lifetime: float) -> tuple[list[int], TokenAuth]:
    calls: list[int] = []

    async def fetch() -> BearerToken:
        calls.append(1)
        await asyncio.sleep(0.01)
        return BearerToken(f"t{len(calls)}", time.monotonic() + lifetime)

    return calls, TokenAuth(fetch, renew_before_seconds=1)


def test_concurrent_requests_share_one_fetch() -> None:
    calls, auth = fetcher(3600)

    async def many() -> set[str | None]:
        return set(await asyncio.gather(*(auth.header() for _ in range(50))))

    assert asyncio.run(many()) == {"Bearer t1"}
    assert len(calls) == 1


def test_tokens_are_renewed_before_they_expire() -> None:
    _, auth = fetcher(0.5)  # already inside the 1 s renewal margin

    async def twice() -> list[str | None]:
        return [await auth.header(), await auth.header()]

    assert asyncio.run(twice()) == ["Bearer t1", "Bearer t2"]


def test_a_refused_token_is_dropped_once() -> None:
    calls, auth = fetcher(3600)

    async def refuse() -> list[str | None]:
        first = await auth.header()
        assert first is not None
        assert await auth.rejected(first)
        second = await auth.header()
        # A late refusal of the old token must not drop the new one.
        await auth.rejected(first)
        return [first, second, await auth.header()]

    assert asyncio.run(refuse()) == ["Bearer t1", "Bearer t2", "Bearer t2"]
    assert len(calls) == 2
