"""Guidebook's webhooks over real HTTP: the token, the body checks, and exactly what each drops."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sessiongraph.sandbox.guidebook import SANDBOX_API_KEY
from tests._servers import Gateway, Sandbox, sandbox_settings

CDC, MDS = 58214, 58377  # the seeded guides
FIRST_SESSION = 4120337  # a CDC session
TOKEN = "gb-webhook-token-for-tests"
PATH = "/webhooks/guidebook"
HEADER = "GB_WEBHOOK_SECURITY_TOKEN"

SESSION = "query($id: Int!) { guidebookSession(id: $id) { name } }"
SESSIONS = (
    "query($guide: Int!) { guidebookSessions(guideId: $guide, first: 100) { nodes { name } } }"
)
GUIDE = "query($id: Int!) { guide(id: $id) { name } }"
GUIDES = "{ guides(first: 10) { nodes { name } } }"
TRACKS = "query($guide: Int!) { scheduleTracks(guideId: $guide) { name } }"


@pytest.fixture
def emulator(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """Guidebook's emulator, spoken to directly: changes the gateway does not see."""
    headers = {"Authorization": f"JWT {SANDBOX_API_KEY}"}
    with httpx.Client(base_url=sandbox.base_url("guidebook"), headers=headers) as client:
        yield client


@pytest.fixture
def hooked(make_gateway: Any) -> Gateway:
    """A gateway with the webhook configured and the in-process cache on."""
    gateway: Gateway = make_gateway(guidebook_webhook_token=TOKEN, cache_url="memory://")
    return gateway


def payload(event: str, weid: str = "weid-1", **properties: Any) -> dict[str, Any]:
    common = {"time": "2026-12-01T10:00:00", "guide_name": "CDC", "email": "ann@example.com"}
    return {"weid": weid, "event": event, "properties": common | properties, "extra_metadata": None}


def deliver(gateway: Gateway, body: Any, token: str | None = TOKEN) -> httpx.Response:
    headers = {HEADER: token} if token is not None else {}
    return gateway.http.post(PATH, json=body, headers=headers)


def accepted(gateway: Gateway, body: Any) -> dict[str, Any]:
    response = deliver(gateway, body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["accepted"] is True
    return result


def read(gateway: Gateway, query: str, **variables: Any) -> Any:
    result = gateway.query(query, variables)
    assert "errors" not in result, result
    return result["data"]


def session_name(gateway: Gateway, session_id: int = FIRST_SESSION) -> str:
    name: str = read(gateway, SESSION, id=session_id)["guidebookSession"]["name"]
    return name


def list_names(gateway: Gateway, guide: int) -> list[str]:
    return [n["name"] for n in read(gateway, SESSIONS, guide=guide)["guidebookSessions"]["nodes"]]


def rename_session(emulator: httpx.Client, session_id: int, name: str) -> None:
    emulator.patch(f"/sessions/{session_id}/", json={"name": name}).raise_for_status()


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["extensions"]["code"]
    return code


# --- the route and its token ---------------------------------------------------------------------


def test_without_a_token_the_route_is_an_unknown_path(gateway: Gateway) -> None:
    unknown = gateway.http.post("/webhooks/nothing-here", json={})
    for method in ("POST", "GET"):
        response = gateway.http.request(method, PATH, json=payload("Builder-SessionUpdated"))
        assert response.status_code == 404
        assert response.content == unknown.content
        assert error_code(response) == "NOT_FOUND"


def test_an_empty_token_is_no_token(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_webhook_token="")
    assert deliver(gateway, payload("Builder-SessionUpdated"), token="").status_code == 404


def test_only_posts_are_allowed(hooked: Gateway) -> None:
    response = hooked.http.get(PATH, headers={HEADER: TOKEN})
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {HEADER: "not-the-token"},
        {HEADER: TOKEN + "x"},
        {HEADER: TOKEN.upper()},
        # The header with dashes is another header (proxies that rewrite it break the webhook).
        {"GB-WEBHOOK-SECURITY-TOKEN": TOKEN},
    ],
    ids=["missing", "wrong", "longer", "case", "dashes"],
)
def test_a_missing_or_wrong_token_is_refused_and_drops_nothing(
    hooked: Gateway,
    emulator: httpx.Client,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
) -> None:
    before = session_name(hooked)
    rename_session(emulator, FIRST_SESSION, "Renamed Behind The Gateway")
    with caplog.at_level(logging.DEBUG):
        response = hooked.http.post(
            PATH, json=payload("Builder-SessionUpdated", guide_id=str(CDC)), headers=headers
        )
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHENTICATED"
    assert response.headers["Cache-Control"] == "no-store"
    assert session_name(hooked) == before  # still the cached value
    assert "guidebook webhook refused" in caplog.text
    for secret in (TOKEN, *headers.values()):
        assert secret not in caplog.text


def test_a_repeated_token_header_is_refused(hooked: Gateway) -> None:
    response = hooked.http.post(
        PATH,
        json=payload("Builder-SessionUpdated"),
        headers=[(HEADER, TOKEN), (HEADER, TOKEN)],
    )
    assert response.status_code == 401


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_the_underscored_header_reaches_the_app_through_uvicorn(
    sandbox: Sandbox, emulator: httpx.Client, parser: str
) -> None:
    # Some proxies (nginx without `underscores_in_headers on`) drop it; uvicorn does not.
    settings = sandbox_settings(sandbox, guidebook_webhook_token=TOKEN, cache_url="memory://")
    gateway = Gateway(settings, http=parser)
    try:
        assert session_name(gateway) == "Registration & Breakfast"
        rename_session(emulator, FIRST_SESSION, f"Renamed Under {parser}")
        body = payload("Builder-SessionUpdated", guide_id=str(CDC), session_id=str(FIRST_SESSION))
        assert accepted(gateway, body)["invalidated"] == [
            f"sessions@guide:{CDC}",
            "sessions:4120337",
        ]
        assert session_name(gateway) == f"Renamed Under {parser}"
    finally:
        gateway.close()


# --- what each event drops -----------------------------------------------------------------------


def test_a_session_update_shows_at_once_and_other_guides_stay_cached(
    hooked: Gateway, emulator: httpx.Client, sandbox: Sandbox
) -> None:
    assert session_name(hooked) == "Registration & Breakfast"
    cdc, mds = list_names(hooked, CDC), list_names(hooked, MDS)
    rename_session(emulator, FIRST_SESSION, "Renamed In Builder")
    body = payload("Builder-SessionUpdated", guide_id=str(CDC), session_id=str(FIRST_SESSION))
    assert accepted(hooked, body) == {
        "accepted": True,
        "invalidated": [f"sessions@guide:{CDC}", f"sessions:{FIRST_SESSION}"],
    }
    # Well within the 30 s TTL: the webhook, not age, made these reads go upstream again.
    assert session_name(hooked) == "Renamed In Builder"
    assert sorted(list_names(hooked, CDC)) == sorted(
        ["Renamed In Builder" if n == "Registration & Breakfast" else n for n in cdc]
    )
    upstream = sandbox.requests("guidebook")
    assert list_names(hooked, MDS) == mds
    assert sandbox.requests("guidebook") == upstream


def test_all_sessions_deleted_drops_that_guides_lists_and_sessions_only(
    hooked: Gateway, emulator: httpx.Client, sandbox: Sandbox
) -> None:
    mds_first = hooked.query(
        "query($g: Int!) { guidebookSessions(guideId: $g, first: 1) { nodes { guidebookId } } }",
        {"g": MDS},
    )["data"]["guidebookSessions"]["nodes"][0]["guidebookId"]
    cdc, mds = list_names(hooked, CDC), list_names(hooked, MDS)
    session_name(hooked)
    rename_session(emulator, FIRST_SESSION, "Gone From CDC")
    rename_session(emulator, mds_first, "Renamed In MDS")
    body = payload("Builder-AllSessionsInGuideDeleted", guide_id=str(CDC))
    assert accepted(hooked, body)["invalidated"] == [f"sessions@guide:{CDC}", "sessions@items"]
    assert "Gone From CDC" in list_names(hooked, CDC)
    assert len(list_names(hooked, CDC)) == len(cdc)
    assert session_name(hooked) == "Gone From CDC"
    upstream = sandbox.requests("guidebook")
    assert list_names(hooked, MDS) == mds  # the other guide's list: still the cached one
    assert sandbox.requests("guidebook") == upstream


def test_a_csv_import_drops_the_guides_tracks_too(hooked: Gateway, emulator: httpx.Client) -> None:
    tracks = [t["name"] for t in read(hooked, TRACKS, guide=CDC)["scheduleTracks"]]
    created = emulator.post("/schedule-tracks/", json={"guide": CDC, "name": "Imported Track"})
    created.raise_for_status()
    body = payload("Builder-ScheduleCSVImport", guide_id=str(CDC))
    assert accepted(hooked, body)["invalidated"] == [
        f"sessions@guide:{CDC}",
        "sessions@items",
        f"schedule-tracks@guide:{CDC}",
        f"locations@guide:{CDC}",
    ]
    after = [t["name"] for t in read(hooked, TRACKS, guide=CDC)["scheduleTracks"]]
    assert sorted(after) == sorted([*tracks, "Imported Track"])


def test_a_published_guide_is_read_again(hooked: Gateway, emulator: httpx.Client) -> None:
    old = read(hooked, GUIDE, id=MDS)["guide"]["name"]
    listed = read(hooked, GUIDES)["guides"]["nodes"]
    assert old in [g["name"] for g in listed]
    emulator.patch(f"/guides/{MDS}/", json={"name": "MDS Published"}).raise_for_status()
    body = payload("Builder-GuidePublished", guide_id=str(MDS))
    assert accepted(hooked, body)["invalidated"] == [f"guides:{MDS}", "guides@all"]
    assert read(hooked, GUIDE, id=MDS)["guide"]["name"] == "MDS Published"
    assert "MDS Published" in [g["name"] for g in read(hooked, GUIDES)["guides"]["nodes"]]


@pytest.mark.parametrize(
    ("event", "properties", "tags"),
    [
        ("Builder-SessionCreated", {"guide_id": "61737"}, ["sessions@guide:61737"]),
        (
            "Builder-SessionDeleted",
            {"guide_id": 61737, "session_id": 13745343},
            ["sessions@guide:61737", "sessions:13745343"],
        ),
        (
            "Builder-SessionUpdated",
            {"guide_id": "61737", "session_id": "13745343"},
            ["sessions@guide:61737", "sessions:13745343"],
        ),
        ("Builder-GuideCloned", {"guide_id": "61737"}, ["guides:61737", "guides@all"]),
    ],
)
def test_each_event_drops_its_tags(
    hooked: Gateway, event: str, properties: dict[str, Any], tags: list[str]
) -> None:
    assert accepted(hooked, payload(event, **properties)) == {"accepted": True, "invalidated": tags}


@pytest.mark.parametrize(
    ("event", "properties", "tags"),
    [
        # Without the session, every cached session of the guide; without the guide, all.
        (
            "Builder-SessionUpdated",
            {"guide_id": "61737", "session_id": "13745343x"},
            ["sessions@guide:61737", "sessions@items"],
        ),
        ("Builder-SessionDeleted", {"guide_id": "-1", "session_id": "5"}, ["sessions"]),
        ("Builder-SessionCreated", {"guide_id": True}, ["sessions"]),
        ("Builder-GuidePublished", {"guide_id": "６１７"}, ["guides"]),  # noqa: RUF001
        (
            "Builder-ScheduleCSVImport",
            {"guide_id": None},
            ["sessions", "schedule-tracks", "locations"],
        ),
    ],
)
def test_unusable_ids_widen_the_drop_with_a_note(
    hooked: Gateway, event: str, properties: dict[str, Any], tags: list[str]
) -> None:
    result = accepted(hooked, payload(event, **properties))
    assert result["invalidated"] == tags
    assert result["notes"]
    assert all("more cached reads were dropped" in note for note in result["notes"])


@pytest.mark.parametrize(
    "event", ["MobileApp-UserCheckedIn", "Builder-AttendeeVerificationCreated", "Metrics-Daily"]
)
def test_other_events_are_accepted_and_drop_nothing(
    hooked: Gateway, emulator: httpx.Client, event: str
) -> None:
    before = session_name(hooked)
    rename_session(emulator, FIRST_SESSION, "Unseen Rename")
    body = payload(event, guide_id=str(CDC), session_id=str(FIRST_SESSION))
    result = accepted(hooked, body)
    assert result["invalidated"] == []
    assert result["notes"] == ["this event changes nothing the gateway caches"]
    assert session_name(hooked) == before


def test_without_guidebook_configured_the_webhook_is_accepted_and_ignored(
    make_gateway: Any,
) -> None:
    gateway = make_gateway(guidebook_webhook_token=TOKEN, guidebook_api_key=None)
    result = accepted(gateway, payload("Builder-SessionUpdated", guide_id=str(CDC)))
    assert result["invalidated"] == []
    assert "not configured" in result["notes"][0]


# --- duplicates ----------------------------------------------------------------------------------


def test_a_redelivered_event_drops_nothing(hooked: Gateway, emulator: httpx.Client) -> None:
    body = payload("Builder-SessionUpdated", "weid-twice", guide_id=str(CDC), session_id="4120337")
    assert accepted(hooked, body)["invalidated"]
    before = session_name(hooked)
    rename_session(emulator, FIRST_SESSION, "Renamed After The First Delivery")
    assert accepted(hooked, body) == {"accepted": True, "duplicate": True, "invalidated": []}
    assert session_name(hooked) == before
    # Another event id is another event, however alike.
    assert accepted(hooked, {**body, "weid": "weid-other"})["invalidated"]
    assert session_name(hooked) == "Renamed After The First Delivery"


def test_duplicates_are_known_without_a_cache(make_gateway: Any) -> None:
    gateway = make_gateway(guidebook_webhook_token=TOKEN, cache_url="none")
    body = payload("Builder-SessionCreated", "weid-no-cache", guide_id=str(CDC))
    assert "duplicate" not in accepted(gateway, body)
    assert accepted(gateway, body)["duplicate"] is True


def test_duplicates_are_shared_by_gateways_through_redis(make_gateway: Any, redis_url: str) -> None:
    first = make_gateway(guidebook_webhook_token=TOKEN, cache_url=redis_url)
    second = make_gateway(guidebook_webhook_token=TOKEN, cache_url=redis_url)
    body = payload("Builder-SessionCreated", "weid-shared-by-redis", guide_id=str(CDC))
    assert accepted(first, body)["invalidated"] == [f"sessions@guide:{CDC}"]
    assert accepted(second, body) == {"accepted": True, "duplicate": True, "invalidated": []}
    assert accepted(first, body)["duplicate"] is True


# --- bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"weid=1&event=x", "must be JSON"),
        (b"\xff\xfe{}", "must be JSON"),
        (b'[{"weid": "1", "event": "Builder-SessionCreated"}]', "must be a JSON object"),
        (b'{"event": "Builder-SessionCreated"}', "`weid` must be a non-empty string"),
        (b'{"weid": 17, "event": "Builder-SessionCreated"}', "`weid` must be"),
        (b'{"weid": "", "event": "Builder-SessionCreated"}', "`weid` must be"),
        (b'{"weid": "1"}', "`event` must be a non-empty string"),
        (b'{"weid": "1", "event": null}', "`event` must be"),
        (b'{"weid": "1", "event": "Builder-SessionCreated", "properties": []}', "`properties`"),
    ],
)
def test_malformed_bodies_are_refused(hooked: Gateway, content: bytes, message: str) -> None:
    response = hooked.http.post(
        PATH, content=content, headers={HEADER: TOKEN, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"
    assert message in response.json()["errors"][0]["message"]


def test_properties_may_be_absent(hooked: Gateway) -> None:
    body = {"weid": "weid-bare", "event": "Builder-GuidePublished"}
    result = accepted(hooked, body)
    assert result["invalidated"] == ["guides"]


def test_oversized_bodies_are_refused_before_they_are_read(hooked: Gateway) -> None:
    big = payload("Builder-SessionCreated", guide_id=str(CDC), padding="x" * 70_000)
    response = deliver(hooked, big)
    assert response.status_code == 413
    assert error_code(response) == "REQUEST_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"weid": "weid-chunked", "event": "Builder-SessionCreated", "pad": "'
        for _ in range(10):
            yield b"x" * 8192
        yield b'"}'

    response = hooked.http.post(PATH, content=chunks(), headers={HEADER: TOKEN})
    assert response.status_code == 413
    small = deliver(hooked, payload("Builder-SessionCreated", guide_id=str(CDC), pad="x" * 60_000))
    assert small.status_code == 200


# --- listeners and metrics -----------------------------------------------------------------------


def test_listeners_hear_of_each_change_once(hooked: Gateway) -> None:
    heard: list[tuple[str, int | None, int | None]] = []

    async def listen(event: str, guide: int | None, session: int | None) -> None:
        heard.append((event, guide, session))

    async def fail(event: str, guide: int | None, session: int | None) -> None:
        raise RuntimeError("a listener that breaks")

    hooked.app.state.providers.guidebook.change_listeners[:] = [fail, listen]
    body = payload("Builder-SessionDeleted", "weid-heard", guide_id=str(CDC), session_id="4120337")
    accepted(hooked, body)
    accepted(hooked, body)  # a duplicate
    accepted(hooked, payload("MobileApp-UserCheckedIn", "weid-app", guide_id=str(CDC)))
    assert heard == [("Builder-SessionDeleted", CDC, FIRST_SESSION)]


def counter(gateway: Gateway, family: str, outcome: str) -> float:
    labels = f'family="{family}",outcome="{outcome}",sender="guidebook"'
    for line in gateway.http.get("/metrics").text.splitlines():
        if line.startswith(f"sessiongraph_webhooks_total{{{labels}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_webhooks_are_counted_by_family_and_outcome(hooked: Gateway) -> None:
    kinds = [
        ("Builder", "accepted"),
        ("Builder", "duplicate"),
        ("MobileApp", "ignored"),
        ("unknown", "refused"),
    ]
    before = {kind: counter(hooked, *kind) for kind in kinds}
    body = payload("Builder-SessionCreated", "weid-counted", guide_id=str(CDC))
    accepted(hooked, body)
    accepted(hooked, body)
    accepted(hooked, payload("MobileApp-UserCheckedIn", "weid-counted-app"))
    assert deliver(hooked, body, token="wrong").status_code == 401
    assert {kind: counter(hooked, *kind) - before[kind] for kind in kinds} == dict.fromkeys(
        kinds, 1.0
    )
