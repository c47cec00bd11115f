"""Guidebook writes beyond sessions and tracks: locations, publishing, bulk import, images."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from typing import Any

import httpx
import orjson
import pytest

from tests._servers import MUTATION_TOKEN, Gateway, Sandbox

CDC, MDS = 58214, 58377  # guides of the sandbox account; CDC has a Main Venue
BEARER = {"Authorization": f"Bearer {MUTATION_TOKEN}"}
SESSION = 4120337


def data(result: dict[str, Any]) -> Any:
    assert "errors" not in result, result["errors"]
    return result["data"]


def writes(sandbox: Sandbox, method: str) -> int:
    counts = sandbox.stats("guidebook")["by_method_path"]
    return sum(n for key, n in counts.items() if key.startswith(method + " "))


# --- locations ---------------------------------------------------------------------------------

LOCATION = "location { guidebookId name locationType latitude longitude address { city } }"
CREATE_LOCATION = f"""
mutation ($input: CreateLocationInput!) {{
  createLocation(input: $input) {{ {LOCATION} userErrors {{ field message code }} }}
}}"""
UPDATE_LOCATION = f"""
mutation ($input: UpdateLocationInput!) {{
  updateLocation(input: $input) {{ {LOCATION} userErrors {{ field message code }} }}
}}"""
DELETE_LOCATION = """
mutation ($id: ID!) {
  deleteLocation(input: {id: $id}) { deletedId deletedNodeId userErrors { field code } }
}"""
LOCATIONS = "query ($guide: Int!) { guide(id: $guide) { locations { guidebookId name } } }"


def location_names(gateway: Gateway, guide: int) -> list[str]:
    found = data(gateway.query(LOCATIONS, {"guide": guide}))["guide"]["locations"]
    return sorted(loc["name"] for loc in found)


def test_locations_are_created_changed_and_deleted(gateway: Gateway) -> None:
    before = location_names(gateway, CDC)
    created = data(
        gateway.query(
            CREATE_LOCATION,
            {
                "input": {
                    "guideId": CDC,
                    "name": "Rooftop Terrace",
                    "locationType": 3,
                    "latitude": 45.52,
                    "longitude": -122.68,
                    "address": {"city": "Portland"},
                }
            },
            **BEARER,
        )
    )["createLocation"]
    assert created["userErrors"] == []
    place = created["location"]
    assert place["name"] == "Rooftop Terrace"
    assert place["address"]["city"] == "Portland"
    assert location_names(gateway, CDC) == sorted([*before, "Rooftop Terrace"])
    changed = data(
        gateway.query(
            UPDATE_LOCATION, {"input": {"id": place["guidebookId"], "name": "Roof"}}, **BEARER
        )
    )["updateLocation"]
    assert changed["location"]["name"] == "Roof"
    assert changed["location"]["latitude"] == 45.52
    deleted = data(gateway.query(DELETE_LOCATION, {"id": place["guidebookId"]}, **BEARER))
    assert deleted["deleteLocation"]["deletedId"] == place["guidebookId"]
    assert location_names(gateway, CDC) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"locationType": 1}, "locationType"),  # CDC has its Main Venue already
        ({"locationType": 3}, "latitude"),  # Google Maps needs coordinates
        ({"locationType": 3, "latitude": 91, "longitude": 0}, "latitude"),
        ({"locationType": 7}, "locationType"),
        ({"locationType": 2, "name": "  "}, "name"),
    ],
)
def test_location_rules_are_checked_before_sending(
    gateway: Gateway, sandbox: Sandbox, fields: dict[str, Any], field: str
) -> None:
    posts = writes(sandbox, "POST")
    values = {"guideId": CDC, "name": "Annex"} | fields
    result = data(gateway.query(CREATE_LOCATION, {"input": values}, **BEARER))["createLocation"]
    assert result["location"] is None
    assert field in [e["field"] for e in result["userErrors"]], result
    assert writes(sandbox, "POST") == posts


def test_a_second_main_venue_is_refused_but_the_venue_may_change(gateway: Gateway) -> None:
    venues = data(
        gateway.query(
            "{ guide(id: %d) { locations { guidebookId locationType } } }" % CDC  # noqa: UP031
        )
    )["guide"]["locations"]
    venue = next(v for v in venues if v["locationType"] == 1)
    renamed = data(
        gateway.query(
            UPDATE_LOCATION,
            {"input": {"id": venue["guidebookId"], "name": "Convention Center"}},
            **BEARER,
        )
    )["updateLocation"]
    assert renamed["userErrors"] == []
    assert renamed["location"]["locationType"] == 1
    other = next(v for v in venues if v["locationType"] != 1)
    promoted = data(
        gateway.query(
            UPDATE_LOCATION, {"input": {"id": other["guidebookId"], "locationType": 1}}, **BEARER
        )
    )["updateLocation"]
    assert promoted["location"] is None
    assert promoted["userErrors"][0]["field"] == "locationType"
    assert "Main Venue" in promoted["userErrors"][0]["message"]


# --- publishing --------------------------------------------------------------------------------

PUBLISH = """
mutation ($guide: ID!) {
  publishGuide(input: {guideId: $guide}) {
    guide { guidebookId } retryAfter userErrors { field message code }
  }
}"""


def test_publishing_honours_two_a_minute(gateway: Gateway, sandbox: Sandbox) -> None:
    for _ in range(2):
        done = data(gateway.query(PUBLISH, {"guide": MDS}, **BEARER))["publishGuide"]
        assert done["userErrors"] == []
        assert done["guide"]["guidebookId"] == MDS
    posts = writes(sandbox, "POST")
    third = data(gateway.query(PUBLISH, {"guide": MDS}, **BEARER))["publishGuide"]
    assert third["guide"] is None
    (error,) = third["userErrors"]
    assert error["code"] == "RATE_LIMITED"
    assert "retry in" in error["message"]
    assert 0 < third["retryAfter"] <= 60
    assert writes(sandbox, "POST") == posts  # refused here, not by Guidebook
    published = httpx.get(sandbox.root("guidebook") + "/__sandbox/guidebook/publishes").json()
    assert [p["guide"] for p in published["publishes"]] == [MDS, MDS]


def test_publishing_an_unknown_guide_is_a_user_error(gateway: Gateway) -> None:
    result = data(gateway.query(PUBLISH, {"guide": 1}, **BEARER))["publishGuide"]
    assert result["userErrors"][0]["code"] == "NOT_FOUND"


# --- bulk import -------------------------------------------------------------------------------

BULK = """
mutation ($sessions: [CreateSessionInput!]!) {
  createSessions(input: {sessions: $sessions}) {
    results { session { guidebookId name importId } userErrors { field message code } }
  }
}"""
COUNT = "query ($g: Int!) { guidebookSessions(guideId: $g, first: 1) { totalCount } }"


def schedule(count: int, prefix: str = "Talk") -> list[dict[str, Any]]:
    return [
        {
            "guideId": MDS,
            "name": f"{prefix} {n}",
            "startTime": f"2027-06-0{1 + n % 3}T{8 + n % 10:02d}:00:00Z",
        }
        for n in range(count)
    ]


def total(gateway: Gateway) -> int:
    count: int = data(gateway.query(COUNT, {"g": MDS}))["guidebookSessions"]["totalCount"]
    return count


def test_two_hundred_sessions_with_lost_answers_land_exactly_once(
    gateway: Gateway, sandbox: Sandbox
) -> None:
    before = total(gateway)
    sandbox.faults("guidebook", drop_rate=0.05, drop_phase="after", methods=["POST"])
    items = schedule(200)
    results = data(gateway.query(BULK, {"sessions": items}, **BEARER))["createSessions"]["results"]
    sandbox.faults("guidebook")
    assert len(results) == 200
    assert [r["session"]["name"] for r in results] == [i["name"] for i in items]
    assert all(r["userErrors"] == [] for r in results)
    assert total(gateway) == before + 200
    # The same call again (a client that never saw the answer) creates nothing.
    again = data(gateway.query(BULK, {"sessions": items}, **BEARER))["createSessions"]["results"]
    assert [r["session"]["guidebookId"] for r in again] == [
        r["session"]["guidebookId"] for r in results
    ]
    assert total(gateway) == before + 200


def test_bulk_items_fail_alone_and_keep_their_place(gateway: Gateway) -> None:
    items = schedule(3, "Keep")
    items[1] = items[1] | {"endTime": "2027-01-01T00:00:00Z"}  # ends before it starts
    results = data(gateway.query(BULK, {"sessions": items}, **BEARER))["createSessions"]["results"]
    assert results[0]["session"]["name"] == "Keep 0"
    assert results[1]["session"] is None
    assert results[1]["userErrors"][0]["field"] == "endTime"
    assert results[2]["session"]["name"] == "Keep 2"


def test_bulk_import_is_bounded(gateway: Gateway, sandbox: Sandbox) -> None:
    before = sandbox.requests("guidebook")
    result = gateway.query(BULK, {"sessions": schedule(501)}, **BEARER)
    assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "at most 500" in result["errors"][0]["message"]
    assert sandbox.requests("guidebook") == before


def test_bulk_import_needs_the_gateway_token(gateway: Gateway) -> None:
    result = gateway.query(BULK, {"sessions": schedule(1)})
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- images ------------------------------------------------------------------------------------

UPDATE_IMAGE = """
mutation ($id: ID!, $image: Upload, $remove: Boolean) {
  updateSession(input: {id: $id, image: $image, removeImage: $remove}) {
    session { guidebookId image } userErrors { field message code }
  }
}"""
CREATE_WITH_IMAGE = """
mutation ($image: Upload) {
  createSession(input: {guideId: 58214, name: "With a picture",
                        startTime: "2027-04-21T09:00:00Z", image: $image}) {
    session { guidebookId name image } userErrors { field message code }
  }
}"""


def png(width: int = 640, height: int = 240) -> bytes:
    """A real (grey) PNG of the session image's ideal size."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\x00" * 64
    + b"\xff\xd9"
)


def upload(
    gateway: Gateway,
    query: str,
    variables: dict[str, Any],
    content: bytes | io.IOBase,
    name: str,
    **headers: str,
) -> httpx.Response:
    """A GraphQL multipart request (the spec Apollo's and urql's upload links send)."""
    operations = {"query": query, "variables": {**variables, "image": None}}
    return gateway.http.post(
        "/graphql",
        data={
            "operations": orjson.dumps(operations).decode(),
            "map": orjson.dumps({"0": ["variables.image"]}).decode(),
        },
        files={"0": (name, content, "image/png")},
        headers={**BEARER, "Apollo-Require-Preflight": "true", **headers},
    )


def test_an_image_is_uploaded_replaced_and_removed(gateway: Gateway, sandbox: Sandbox) -> None:
    first = upload(gateway, UPDATE_IMAGE, {"id": SESSION}, png(), "banner.png")
    assert first.status_code == 200, first.text
    session = data(first.json())["updateSession"]["session"]
    url = session["image"]
    assert url
    assert url.startswith("http")
    served = httpx.get(url)
    assert served.status_code == 200
    assert served.content == png()
    second = upload(gateway, UPDATE_IMAGE, {"id": SESSION}, JPEG, "photo.jpg")
    replaced = data(second.json())["updateSession"]["session"]["image"]
    assert replaced
    assert replaced != url
    assert httpx.get(replaced).content == JPEG
    removed = data(gateway.query(UPDATE_IMAGE, {"id": SESSION, "remove": True}, **BEARER))
    assert removed["updateSession"]["session"]["image"] is None


def test_a_session_is_created_with_its_image(gateway: Gateway) -> None:
    response = upload(gateway, CREATE_WITH_IMAGE, {}, png(), "banner.png")
    created = data(response.json())["createSession"]
    assert created["userErrors"] == []
    assert created["session"]["name"] == "With a picture"
    assert httpx.get(created["session"]["image"]).content == png()


@pytest.mark.parametrize(
    ("content", "name"),
    [(b"just some text, not a picture\n", "notes.png"), (b"GIF89a" + b"\x00" * 32, "anim.png")],
)
def test_files_that_are_not_png_or_jpeg_are_refused_unsent(
    gateway: Gateway, sandbox: Sandbox, content: bytes, name: str
) -> None:
    patches = writes(sandbox, "PATCH")
    response = upload(gateway, UPDATE_IMAGE, {"id": SESSION}, content, name)
    result = data(response.json())["updateSession"]
    assert result["session"] is None
    assert result["userErrors"][0]["field"] == "image"
    assert "PNG or JPEG" in result["userErrors"][0]["message"]
    assert writes(sandbox, "PATCH") == patches


def test_a_jpeg_named_png_is_sent_as_what_it_is(gateway: Gateway) -> None:
    response = upload(gateway, UPDATE_IMAGE, {"id": SESSION}, JPEG, "really-a-jpeg.png")
    image = data(response.json())["updateSession"]["session"]["image"]
    assert image.endswith(".jpg")


def test_an_image_over_the_limit_is_refused_unsent(gateway: Gateway, sandbox: Sandbox) -> None:
    patches = writes(sandbox, "PATCH")
    big = png() + b"\x00" * 5_000_000
    result = data(upload(gateway, UPDATE_IMAGE, {"id": SESSION}, big, "big.png").json())
    assert result["updateSession"]["userErrors"][0]["field"] == "image"
    assert "5000000" in result["updateSession"]["userErrors"][0]["message"]
    assert writes(sandbox, "PATCH") == patches


def test_a_six_megabyte_upload_is_refused_before_it_is_read(
    gateway: Gateway, sandbox: Sandbox, tmp_path: Any
) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png() + b"\x00" * (6 * 1024 * 1024))
    before = sandbox.requests("guidebook")
    tracemalloc.start()
    try:
        with path.open("rb") as file:
            response = upload(gateway, UPDATE_IMAGE, {"id": SESSION}, file, "huge.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert sandbox.requests("guidebook") == before
    assert peak < 3 * 1024 * 1024, peak  # neither end held the 6 MB in memory


def test_uploads_keep_csrf_prevention(gateway: Gateway, sandbox: Sandbox) -> None:
    patches = writes(sandbox, "PATCH")
    operations = {"query": UPDATE_IMAGE, "variables": {"id": SESSION, "image": None}}
    response = gateway.http.post(
        "/graphql",
        data={
            "operations": orjson.dumps(operations).decode(),
            "map": orjson.dumps({"0": ["variables.image"]}).decode(),
        },
        files={"0": ("banner.png", png(), "image/png")},
        headers=BEARER,
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "CSRF_PREVENTED"
    assert writes(sandbox, "PATCH") == patches
