"""A request's loaders: what they hold once the answer is made."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from sessiongraph.loaders import Loaders, TelemetryKey
from sessiongraph.providers import Providers
from sessiongraph.providers.openf1_telemetry import CAR_DATA, TelemetrySeries


async def test_released_loaders_forget_the_telemetry_they_loaded() -> None:
    asked: list[tuple[Any, ...]] = []

    async def telemetry(*key: Any) -> TelemetrySeries:
        asked.append(key)
        return TelemetrySeries([], {})

    openf1 = SimpleNamespace(telemetry=telemetry)
    loaders = Loaders(cast(Providers, SimpleNamespace(openf1=openf1)))
    key: TelemetryKey = (CAR_DATA, 9839, 1, None, None)
    await loaders.telemetry().load(key)
    await loaders.telemetry().load(key)
    assert len(asked) == 1  # shared within the request
    loaders.release()
    await loaders.telemetry().load(key)
    assert len(asked) == 2
