"""The Guidebook emulator over real HTTP: DRF auth, paging, filters, writes, errors, accounts,
publishing, the daily quota and images."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer

from sessiongraph.sandbox.guidebook import (
    SANDBOX_ACCOUNT_ID,
    SANDBOX_API_KEY,
    SANDBOX_SECOND_ACCOUNT_ID,
    SANDBOX_SECOND_API_KEY,
    create_app,
)
from tests._servers import Sandbox

CDC, MDS = 58214, 58377  # the seeded guides: a developer conference and a motorsport summit
KEYNOTES, WEB, DATA = 301101, 301102, 301103
MDS_TELEMETRY = 301115
MAIN_VENUE, BALLROOM_A = 77014, 77015
FIRST_SESSION, NEXT_SESSION_ID = 4120337, 4120423
AUTH = {"Authorization": f"JWT {SANDBOX_API_KEY}"}
# The second account's guide, a makers fair: its tracks, locations and sessions.
RMF, RMF_WORKSHOPS, RMF_DEMOS, RMF_VENUE = 58296, 301108, 301109, 77011
RMF_SESSIONS = [4120348, 4120349, 4120361, 4120362, 4120374]
SECOND_AUTH = {"Authorization": f"JWT {SANDBOX_SECOND_API_KEY}"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 16
DAY = 86_400


@pytest.fixture
def gb(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url("guidebook"), headers=AUTH, timeout=10) as client:
        yield client


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["results"]]


def new_session(**overrides: Any) -> dict[str, Any]:
    body = {"guide": CDC, "name": "Hallway Track", "start_time": "2027-04-20T20:00:00+0000"}
    return body | overrides


# --- auth and routing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("Token " + SANDBOX_API_KEY, "Authentication credentials were not provided."),
        ("JWT", "Invalid Authorization header. No credentials provided."),
        ("JWT not-the-key", "Error decoding signature."),
    ],
)
def test_refuses_missing_or_wrong_key(sandbox: Sandbox, header: str | None, detail: str) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = httpx.get(sandbox.base_url("guidebook") + "/sessions/", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == 'JWT realm="api"'


def test_unknown_object_is_drf_404_and_unknown_url_is_django_html(gb: httpx.Client) -> None:
    for path in ("/sessions/999/", "/sessions/abc/", "/schedule-tracks/1/", "/guides/1/"):
        response = gb.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}
    response = gb.get("/custom-things/")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>Not Found</h1>" in response.text


def test_missing_trailing_slash_redirects_keeping_the_query(gb: httpx.Client) -> None:
    response = gb.get("/sessions", params={"guide": CDC})
    assert response.status_code == 301
    assert response.headers["Location"] == f"/open-api/v1/sessions/?guide={CDC}"


def test_guides_cannot_be_created_or_deleted(gb: httpx.Client) -> None:
    created = gb.post("/guides/", json={"name": "New guide"})
    assert created.status_code == 405
    assert created.json() == {"detail": 'Method "POST" not allowed.'}
    assert created.headers["Allow"] == "GET, HEAD, OPTIONS"
    deleted = gb.delete(f"/guides/{CDC}/")
    assert deleted.status_code == 405
    assert deleted.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert gb.put(f"/sessions/{FIRST_SESSION}/", json=new_session()).status_code == 405
    assert gb.get(f"/guides/{CDC}/").status_code == 200


# --- seed, paging ------------------------------------------------------------------------------


def test_seed_is_a_two_guide_conference(gb: httpx.Client) -> None:
    guides = gb.get("/guides/").json()
    assert [g["id"] for g in guides["results"]] == [CDC, MDS]
    assert guides["results"][0]["timezone"] == "US/Pacific"
    assert "redeem_code" not in guides["results"][1]
    counts = {g: gb.get("/sessions/", params={"guide": g}).json()["count"] for g in (CDC, MDS)}
    assert counts == {CDC: 50, MDS: 24}
    assert gb.get("/schedule-tracks/", params={"guide": CDC}).json()["count"] == 7
    assert gb.get("/locations/", params={"guide": MDS}).json()["count"] == 5
    first = gb.get(f"/sessions/{FIRST_SESSION}/").json()
    assert first["name"] == "Registration & Breakfast"
    assert first["start_time"] == "2027-04-20T14:30:00.000000+0000"
    assert list(first)[-6:] == [
        "rank",
        "require_login",
        "max_capacity",
        "waitlist",
        "registration_start_date",
        "registration_end_date",
    ]


def test_pages_follow_next_and_previous(gb: httpx.Client) -> None:
    base = str(gb.base_url).rstrip("/")
    first = gb.get("/sessions/", params={"guide": CDC}).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (50, 25, None)
    assert first["next"] == f"{base}/sessions/?guide={CDC}&page=2"
    second = httpx.get(first["next"], headers=AUTH).json()
    assert second["next"] is None
    assert second["previous"] == f"{base}/sessions/?guide={CDC}"
    seen = [r["id"] for r in first["results"] + second["results"]]
    assert len(set(seen)) == 50
    assert seen == sorted(seen)


def test_page_size_is_capped_and_bad_pages_are_404(gb: httpx.Client) -> None:
    small = gb.get("/sessions/", params={"guide": MDS, "page_size": 10, "page": 3}).json()
    assert len(small["results"]) == 4
    assert small["previous"].endswith(f"/sessions/?guide={MDS}&page=2&page_size=10")
    assert len(gb.get("/sessions/", params={"page_size": 9999}).json()["results"]) == 74
    assert len(gb.get("/sessions/", params={"page": "last"}).json()["results"]) == 24
    for page in ("4", "0", "abc"):
        response = gb.get("/sessions/", params={"page": page})
        assert response.status_code == 404
        assert response.json() == {"detail": "Invalid page."}
    empty = gb.get("/sessions/", params={"import_id": "nope"}).json()
    assert empty == {"count": 0, "next": None, "previous": None, "results": []}


# --- filters, ordering -------------------------------------------------------------------------


def test_session_filters(gb: httpx.Client) -> None:
    keynotes = ids(gb.get("/sessions/", params={"guide": CDC, "schedule_tracks": KEYNOTES}))
    assert len(keynotes) == 4
    both = gb.get("/sessions/", params=[("schedule_tracks", KEYNOTES), ("schedule_tracks", DATA)])
    assert both.json()["count"] == 4 + 8  # a session in any of the tracks
    assert ids(gb.get("/sessions/", params={"id": FIRST_SESSION})) == [FIRST_SESSION]
    assert ids(gb.get("/sessions/", params={"import_id": "cdc27-s001"})) == [FIRST_SESSION]
    assert ids(gb.get("/sessions/", params={"guide": MDS, "id": FIRST_SESSION})) == []
    assert gb.get("/sessions/", params={"colour": "red"}).json()["count"] == 74


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        (
            {"guide": 1},
            {"guide": ["Select a valid choice. That choice is not one of the available choices."]},
        ),
        ({"id": "x"}, {"id": ["Enter a number."]}),
        (
            {"schedule_tracks": 5},
            {"schedule_tracks": ["Select a valid choice. 5 is not one of the available choices."]},
        ),
        ({"schedule_tracks": "x"}, {"schedule_tracks": ["\u201cx\u201d is not a valid value."]}),
    ],
)
def test_bad_filter_values_are_400(
    gb: httpx.Client, params: dict[str, Any], errors: dict[str, Any]
) -> None:
    response = gb.get("/sessions/", params=params)
    assert response.status_code == 400
    assert response.json() == errors


def test_other_resources_filters(gb: httpx.Client) -> None:
    tracks = gb.get("/schedule-tracks/", params={"import_id": "mds27-track-tel"})
    assert ids(tracks) == [MDS_TELEMETRY]
    assert ids(gb.get("/schedule-tracks/", params={"id": WEB}))[0] == WEB
    venues = gb.get("/locations/", params={"location_type": 1}).json()["results"]
    assert [v["name"] for v in venues] == ["Oregon Convention Center", "Silverstone Wing"]
    assert ids(gb.get("/guides/", params={"category__id": 31})) == [MDS]
    assert ids(gb.get("/guides/", params={"owner": 1})) == []


def test_ordering(gb: httpx.Client) -> None:
    params: dict[str, Any] = {"guide": MDS, "page_size": 100}
    rows = gb.get("/sessions/", params=params | {"ordering": "start_time"}).json()["results"]
    starts = [r["start_time"] for r in rows]
    assert starts == sorted(starts)
    assert starts[0] == "2027-06-08T07:00:00.000000+0000"
    rows = gb.get("/sessions/", params=params | {"ordering": "-end_time,start_time"}).json()
    ends = [r["end_time"] for r in rows["results"]]
    # Postgres puts NULL first when descending: the all-day session comes first.
    assert ends[0] is None
    assert rows["results"][0]["name"] == "Garage Tours"
    assert ends[1:] == sorted(ends[1:], reverse=True)
    tie = [r for r in rows["results"] if r["end_time"] == "2027-06-08T11:30:00.000000+0000"]
    assert [r["start_time"] for r in tie] == sorted(r["start_time"] for r in tie)
    newest = ids(gb.get("/sessions/", params=params | {"ordering": "-id"}))
    assert newest == sorted(newest, reverse=True)
    ignored = ids(gb.get("/sessions/", params=params | {"ordering": "name"}))
    assert ignored == sorted(ignored)


def test_v1_1_list_calls_need_guide(sandbox: Sandbox) -> None:
    root = sandbox.root("guidebook") + "/open-api/v1.1"
    with httpx.Client(base_url=root, headers=AUTH) as client:
        for resource in ("sessions", "schedule-tracks", "locations"):
            response = client.get(f"/{resource}/")
            assert response.status_code == 400
            assert response.json() == {"guide": ["This field is required."]}
            assert client.get(f"/{resource}/", params={"guide": MDS}).status_code == 200
        assert client.get("/guides/").json()["count"] == 2
        assert client.get(f"/sessions/{FIRST_SESSION}/").status_code == 200


# --- writes ------------------------------------------------------------------------------------


def test_session_round_trip(gb: httpx.Client) -> None:
    created = gb.post(
        "/sessions/",
        json=new_session(
            end_time="2027-04-20T13:30:00-07:00",
            schedule_tracks=[WEB, DATA],
            locations=[BALLROOM_A],
            import_id="ext-1",
            require_login=True,
            max_capacity=40,
            waitlist=True,
            registration_start_date="2027-04-01T00:00:00",
        ),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == NEXT_SESSION_ID
    assert body["end_time"] == "2027-04-20T20:30:00.000000+0000"
    assert body["registration_start_date"] == "2027-04-01T00:00:00.000000+0000"
    assert (body["schedule_tracks"], body["locations"]) == ([WEB, DATA], [BALLROOM_A])
    assert (body["allow_rating"], body["all_day"], body["image"]) == (True, False, None)
    url = f"/sessions/{body['id']}/"
    assert gb.get(url).json() == body

    patched = gb.patch(url, json={"name": "Hallway Track (moved)", "schedule_tracks": []})
    assert patched.status_code == 200
    assert patched.json() == body | {"name": "Hallway Track (moved)", "schedule_tracks": []}

    deleted = gb.delete(url)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert gb.get(url).status_code == 404
    assert gb.delete(url).status_code == 404
    again = gb.post("/sessions/", json=new_session()).json()
    assert again["id"] == NEXT_SESSION_ID + 1  # ids are a sequence, never reused


def test_form_encoded_create_and_naive_times(gb: httpx.Client) -> None:
    response = gb.post(
        "/sessions/",
        data={
            "guide": str(CDC),
            "name": "Form session",
            "start_time": "2027-04-21T16:00:00",
            "end_time": "2027-04-21T17:00:00.000000+0000",
            "schedule_tracks": [str(WEB), str(DATA)],
            "allow_rating": "false",
            "max_capacity": "",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["start_time"] == "2027-04-21T16:00:00.000000+0000"
    assert body["schedule_tracks"] == [WEB, DATA]
    assert (body["allow_rating"], body["max_capacity"]) == (False, None)


def test_image_upload_accepts_png_only(gb: httpx.Client) -> None:
    fields = {"guide": str(CDC), "name": "Poster", "start_time": "2027-04-21T16:00:00Z"}
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    ok = gb.post("/sessions/", data=fields, files={"image": ("p.png", png, "image/png")})
    assert ok.status_code == 201, ok.text
    image_url = ok.json()["image"]
    assert image_url.endswith(".png")
    assert httpx.get(image_url).content == png
    bad = gb.post("/sessions/", data=fields, files={"image": ("p.gif", b"GIF89a", "image/gif")})
    assert bad.status_code == 400
    assert bad.json()["image"][0].startswith("Upload a valid image.")


LONG_HTML = "<p>" + "x" * 19_994 + "</p>"  # 20,001 characters


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            {
                "guide": ["This field is required."],
                "name": ["This field is required."],
                "start_time": ["This field is required."],
            },
        ),
        (
            new_session(description_html=LONG_HTML),
            {"description_html": ["Ensure this field has no more than 20000 characters."]},
        ),
        (
            new_session(end_time="2027-04-20T19:59:59+00:00"),
            {"non_field_errors": ["End time must not be before start time."]},
        ),
        (new_session(guide=1), {"guide": ['Invalid pk "1" - object does not exist.']}),
        (
            new_session(schedule_tracks=[MDS_TELEMETRY]),
            {"schedule_tracks": [f'Invalid pk "{MDS_TELEMETRY}" - object does not exist.']},
        ),
        (
            new_session(locations=["hall"]),
            {"locations": ["Incorrect type. Expected pk value, received str."]},
        ),
        (
            new_session(schedule_tracks=WEB),
            {"schedule_tracks": ['Expected a list of items but got type "int".']},
        ),
        (new_session(name="   "), {"name": ["This field may not be blank."]}),
        (new_session(name=None), {"name": ["This field may not be null."]}),
        (new_session(all_day="sometimes"), {"all_day": ["Must be a valid boolean."]}),
        (new_session(max_capacity=2.5), {"max_capacity": ["A valid integer is required."]}),
        (new_session(rank="first"), {"rank": ["A valid number is required."]}),
        (
            new_session(start_time="next tuesday"),
            {
                "start_time": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        (
            new_session(require_login=True, add_to_schedule=False),
            {"require_login": ["require_login requires add_to_schedule to be true."]},
        ),
        (
            new_session(max_capacity=10),
            {"max_capacity": ["max_capacity requires require_login to be true."]},
        ),
        (
            new_session(require_login=True, waitlist=True),
            {"waitlist": ["waitlist requires max_capacity to be set."]},
        ),
        (
            new_session(registration_end_date="2027-04-19T00:00:00Z"),
            {"registration_end_date": ["registration_end_date requires require_login to be true."]},
        ),
        (
            new_session(image="https://example.com/x.png"),
            {"image": ["The submitted data was not a file. Check the encoding type on the form."]},
        ),
    ],
)
def test_session_validation_errors(
    gb: httpx.Client, body: dict[str, Any], errors: dict[str, Any]
) -> None:
    response = gb.post("/sessions/", json=body)
    assert response.status_code == 400
    assert response.json() == errors
    assert gb.get("/sessions/").json()["count"] == 74


def test_patch_validates_against_the_stored_session(gb: httpx.Client) -> None:
    url = f"/sessions/{FIRST_SESSION}/"
    too_early = gb.patch(url, json={"end_time": "2027-04-20T14:00:00+0000"})
    assert too_early.json() == {"non_field_errors": ["End time must not be before start time."]}
    assert gb.patch(url, json={"guide": MDS}).json()["guide"] == CDC  # never moves guides
    assert gb.patch(url, json=[]).json() == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }
    broken = gb.patch(url, content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("JSON parse error")
    assert gb.get(url).json()["end_time"] == "2027-04-20T16:00:00.000000+0000"


def test_schedule_track_round_trip_and_colours(gb: httpx.Client) -> None:
    bad = gb.post("/schedule-tracks/", json={"guide": CDC, "name": "Hardware", "color": "blue"})
    assert bad.status_code == 400
    assert bad.json() == {"color": ["Enter a valid hex color, eg. #000000"]}
    created = gb.post("/schedule-tracks/", json={"guide": CDC, "name": "Hardware"})
    assert created.status_code == 201
    track = created.json()
    assert (track["color"], track["import_id"], track["guide"]) == (None, None, CDC)
    url = f"/schedule-tracks/{track['id']}/"
    assert gb.patch(url, json={"color": "#00FF7F"}).json()["color"] == "#00FF7F"
    # Deleting a track takes it off its sessions.
    assert gb.delete(f"/schedule-tracks/{KEYNOTES}/").status_code == 204
    assert gb.get("/sessions/", params={"guide": CDC}).json()["count"] == 50
    assert KEYNOTES not in gb.get("/sessions/4120339/").json()["schedule_tracks"]
    assert gb.delete(url).status_code == 204


def test_location_rules(gb: httpx.Client) -> None:
    second_venue = gb.post("/locations/", json={"guide": CDC, "name": "Annex", "location_type": 1})
    assert second_venue.json() == {"non_field_errors": ["A guide can only have one Main Venue."]}
    pin = gb.post("/locations/", json={"guide": CDC, "name": "Park", "location_type": 3})
    assert set(pin.json()) == {"latitude", "longitude"}
    bad_type = gb.post("/locations/", json={"guide": CDC, "name": "X", "location_type": 7})
    assert bad_type.json() == {"location_type": ['"7" is not a valid choice.']}
    renamed = gb.patch(f"/locations/{MAIN_VENUE}/", json={"name": "OCC"})
    assert (renamed.status_code, renamed.json()["location_type"]) == (200, 1)
    room = gb.post(
        "/locations/",
        data={
            "guide": str(MDS),
            "name": "Pit Lane",
            "location_type": "2",
            "address": '{"city": "X"}',
        },
    )
    assert room.status_code == 201
    assert room.json()["address"] == {"city": "X"}


def test_guide_patch(gb: httpx.Client) -> None:
    url = f"/guides/{MDS}/"
    patched = gb.patch(url, json={"name": "MDS 2027", "timezone": "UTC", "privacy": 3})
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["timezone"]) == ("MDS 2027", "UTC")
    errors = gb.patch(url, json={"timezone": "Mars/Olympus", "attendees_estimate": -1}).json()
    assert errors == {
        "timezone": ['"Mars/Olympus" is not a valid choice.'],
        "attendees_estimate": ["Ensure this value is greater than or equal to 0."],
    }
    assert gb.patch(url, json={"redeem_code": "pitwall"}).status_code == 200
    assert gb.patch(url, json={"redeem_code": "again"}).json() == {
        "redeem_code": ["The passphrase can only be changed once per hour."]
    }


# --- control: reset, budget, faults --------------------------------------------------------------


def test_reset_restores_the_seed(sandbox: Sandbox, gb: httpx.Client) -> None:
    original = gb.get(f"/sessions/{FIRST_SESSION}/").json()
    gb.delete(f"/sessions/{FIRST_SESSION}/")
    gb.patch(f"/guides/{CDC}/", json={"name": "Renamed"})
    gb.post("/sessions/", json=new_session())
    sandbox.reset("guidebook")
    assert gb.get(f"/sessions/{FIRST_SESSION}/").json() == original
    assert gb.get(f"/guides/{CDC}/").json()["name"] == "Cascadia Developer Conference 2027"
    assert gb.get("/sessions/").json()["count"] == 74
    assert gb.post("/sessions/", json=new_session()).json()["id"] == NEXT_SESSION_ID


def test_daily_budget_runs_out_with_retry_after(sandbox: Sandbox, gb: httpx.Client) -> None:
    config = sandbox.root("guidebook") + "/__sandbox/config"
    assert httpx.get(config).json()["daily_request_budget"] == 10_000
    httpx.post(config, json={"daily_request_budget": 3}).raise_for_status()
    assert [gb.get("/guides/").status_code for _ in range(3)] == [200, 200, 200]
    refused = gb.get(f"/sessions/{FIRST_SESSION}/")
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    # The quota is per UTC day: available again at the next midnight UTC.
    until_midnight = DAY - time.time() % DAY
    assert until_midnight - 2 <= retry_after <= until_midnight + 2
    expected = f"Request was throttled. Expected available in {retry_after} seconds."
    assert refused.json() == {"detail": expected}
    # Authentication comes before the throttle, as in DRF.
    assert httpx.get(sandbox.base_url("guidebook") + "/guides/").status_code == 401
    sandbox.reset("guidebook")
    assert gb.get("/guides/").status_code == 200


async def test_create_app_options() -> None:
    server = TestServer(create_app(api_keys=["k1"], daily_request_budget=2, page_size=10))
    await server.start_server()
    try:
        async with httpx.AsyncClient(
            base_url=str(server.make_url("/open-api/v1")), headers={"Authorization": "JWT k1"}
        ) as client:
            page = (await client.get("/sessions/")).json()
            assert (page["count"], len(page["results"])) == (74, 10)
            assert (await client.get("/guides/")).status_code == 200
            assert (await client.get("/guides/")).status_code == 429
    finally:
        await server.close()


def test_injected_faults_look_like_drf_and_a_proxy(sandbox: Sandbox, gb: httpx.Client) -> None:
    sandbox.faults("guidebook", error_rate=1.0, error_status=429, retry_after=7)
    throttled = gb.get("/guides/")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    assert throttled.json() == {"detail": "Request was throttled. Expected available in 7 seconds."}
    sandbox.faults("guidebook", error_rate=1.0, error_status=502)
    bad_gateway = gb.get("/guides/")
    assert bad_gateway.status_code == 502
    assert "<h1>502 Bad Gateway</h1>" in bad_gateway.text


def test_dropped_create_response_still_creates_the_session(
    sandbox: Sandbox, gb: httpx.Client
) -> None:
    sandbox.faults(
        "guidebook",
        drop_rate=1.0,
        drop_phase="after",
        methods=["POST"],
        path_prefix="/open-api/v1/sessions/",
    )
    with pytest.raises(httpx.TransportError):
        gb.post("/sessions/", json=new_session(import_id="gw-create-1"))
    assert gb.get("/sessions/").status_code == 200  # reads are not dropped
    sandbox.faults("guidebook")
    found = gb.get("/sessions/", params={"guide": CDC, "import_id": "gw-create-1"}).json()
    assert found["count"] == 1
    assert found["results"][0]["id"] == NEXT_SESSION_ID
    stats = sandbox.stats("guidebook")
    assert stats["by_method_path"]["POST /open-api/v1/sessions/"] == 1


# --- accounts ------------------------------------------------------------------------------------


@pytest.fixture
def gb2(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """The second account's client."""
    base = sandbox.base_url("guidebook")
    with httpx.Client(base_url=base, headers=SECOND_AUTH, timeout=10) as client:
        yield client


def test_second_account_sees_only_its_own_guide(gb2: httpx.Client) -> None:
    guides = gb2.get("/guides/").json()
    assert [g["id"] for g in guides["results"]] == [RMF]
    assert guides["results"][0]["owner"] == SANDBOX_SECOND_ACCOUNT_ID
    assert guides["results"][0]["name"] == "Riverside Makers Fair 2027"
    assert ids(gb2.get("/sessions/")) == RMF_SESSIONS
    assert ids(gb2.get("/schedule-tracks/")) == [RMF_WORKSHOPS, RMF_DEMOS]
    assert ids(gb2.get("/locations/")) == [RMF_VENUE, 77012]
    both = gb2.get("/sessions/", params={"schedule_tracks": RMF_DEMOS}).json()
    assert [s["name"] for s in both["results"]] == [
        "Robot Arm Show-and-Tell",
        "3D Printer Speed Run",
    ]
    assert ids(gb2.get("/guides/", params={"owner": SANDBOX_SECOND_ACCOUNT_ID})) == [RMF]


def test_accounts_cannot_see_each_others_objects(gb: httpx.Client, gb2: httpx.Client) -> None:
    assert ids(gb.get("/guides/")) == [CDC, MDS]
    assert ids(gb.get("/guides/", params={"owner": SANDBOX_ACCOUNT_ID})) == [CDC, MDS]
    assert gb.get("/sessions/").json()["count"] == 74
    assert RMF_SESSIONS[0] not in ids(gb.get("/sessions/", params={"page_size": 100}))
    for client, paths in (
        (
            gb,
            [f"/guides/{RMF}/", f"/sessions/{RMF_SESSIONS[0]}/", f"/schedule-tracks/{RMF_DEMOS}/"],
        ),
        (gb2, [f"/guides/{CDC}/", f"/sessions/{FIRST_SESSION}/", f"/locations/{MAIN_VENUE}/"]),
    ):
        for path in paths:
            # Guides are never deleted (405 for everyone).
            methods = ("GET", "PATCH") if "/guides/" in path else ("GET", "PATCH", "DELETE")
            for method in methods:
                response = client.request(method, path, json={"name": "x"})
                assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    # Filters offer only the caller's own guides and tracks as choices.
    wrong_guide = gb.get("/sessions/", params={"guide": RMF})
    assert wrong_guide.status_code == 400
    assert wrong_guide.json() == {
        "guide": ["Select a valid choice. That choice is not one of the available choices."]
    }
    wrong_track = gb2.get("/sessions/", params={"schedule_tracks": KEYNOTES})
    assert wrong_track.json() == {
        "schedule_tracks": [
            f"Select a valid choice. {KEYNOTES} is not one of the available choices."
        ]
    }
    v11 = str(gb.base_url).replace("/v1/", "/v1.1/")
    assert (
        httpx.get(v11 + "locations/", params={"guide": CDC}, headers=SECOND_AUTH).status_code == 400
    )
    assert gb.get(f"/sessions/{RMF_SESSIONS[0]}/").status_code == 404  # nothing was changed
    assert gb2.get(f"/sessions/{RMF_SESSIONS[0]}/").json()["name"] == "Opening Circle"


def test_writes_to_another_accounts_guide_are_unknown_pks(
    gb: httpx.Client, gb2: httpx.Client
) -> None:
    for client, guide in ((gb, RMF), (gb2, CDC)):
        for path, body in (
            ("/sessions/", new_session(guide=guide)),
            ("/schedule-tracks/", {"guide": guide, "name": "Sneaky"}),
            ("/locations/", {"guide": guide, "name": "Sneaky", "location_type": 2}),
        ):
            response = client.post(path, json=body)
            assert response.status_code == 400
            assert response.json() == {"guide": [f'Invalid pk "{guide}" - object does not exist.']}
    # Their own tracks and locations only, too.
    response = gb2.post(
        "/sessions/", json=new_session(guide=RMF, schedule_tracks=[WEB], locations=[RMF_VENUE])
    )
    assert response.json() == {"schedule_tracks": [f'Invalid pk "{WEB}" - object does not exist.']}
    created = gb2.post("/sessions/", json=new_session(guide=RMF, schedule_tracks=[RMF_DEMOS]))
    assert created.status_code == 201
    assert created.json()["id"] == NEXT_SESSION_ID  # one id sequence for every account
    assert gb.get(f"/sessions/{NEXT_SESSION_ID}/").status_code == 404


def test_daily_quota_is_per_account(sandbox: Sandbox, gb: httpx.Client, gb2: httpx.Client) -> None:
    config = sandbox.root("guidebook") + "/__sandbox/config"
    httpx.post(config, json={"daily_request_budget": 2}).raise_for_status()
    assert [gb.get("/guides/").status_code for _ in range(3)] == [200, 200, 429]
    assert [gb2.get("/guides/").status_code for _ in range(3)] == [200, 200, 429]
    shown = httpx.get(config).json()
    assert shown["requests_today"] == 4
    assert shown["requests_today_by_account"] == {
        str(SANDBOX_ACCOUNT_ID): 2,
        str(SANDBOX_SECOND_ACCOUNT_ID): 2,
    }


async def test_keys_of_one_account_share_its_quota() -> None:
    app = create_app(
        api_keys=["a1", "a2"], accounts={"b1": SANDBOX_SECOND_ACCOUNT_ID}, daily_request_budget=3
    )
    server = TestServer(app)
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url("/open-api/v1"))) as client:

            async def guides(key: str) -> httpx.Response:
                return await client.get("/guides/", headers={"Authorization": f"JWT {key}"})

            assert [(await guides(k)).status_code for k in ("a1", "a2", "a1")] == [200] * 3
            assert (await guides("a2")).status_code == 429
            seen = await guides("b1")
            assert [g["id"] for g in seen.json()["results"]] == [RMF]
            # The default keys are not configured when `api_keys`/`accounts` replace them.
            assert (await guides(SANDBOX_API_KEY)).status_code == 401
            assert (await guides(SANDBOX_SECOND_API_KEY)).status_code == 401
    finally:
        await server.close()


# --- daily quota across midnight UTC ------------------------------------------------------------


def test_quota_resets_at_midnight_utc(sandbox: Sandbox, gb: httpx.Client) -> None:
    config = sandbox.root("guidebook") + "/__sandbox/config"
    now = time.time()
    # The emulator's clock 30 s before the next midnight UTC.
    before = (now // DAY + 1) * DAY - 30 - now
    shown = httpx.post(config, json={"daily_request_budget": 1, "clock_offset_seconds": before})
    assert shown.json()["quota_resets_in_seconds"] in (30, 31)
    assert gb.get("/guides/").status_code == 200
    refused = gb.get("/guides/")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] in ("29", "30")
    seconds = refused.headers["Retry-After"]
    assert refused.json() == {
        "detail": f"Request was throttled. Expected available in {seconds} seconds."
    }
    # A minute later it is a new UTC day; setting only the clock keeps the count.
    httpx.post(config, json={"clock_offset_seconds": before + 60}).raise_for_status()
    assert gb.get("/guides/").status_code == 200
    assert gb.get("/guides/").status_code == 429
    assert int(gb.get("/guides/").headers["Retry-After"]) > DAY - 60


async def test_quota_day_follows_the_clock_exactly() -> None:
    midnight = 1_800_000_000 // DAY * DAY + DAY  # a midnight UTC
    clock = [midnight - 1.5]
    server = TestServer(create_app(daily_request_budget=2, clock=lambda: clock[0]))
    await server.start_server()
    try:
        async with httpx.AsyncClient(
            base_url=str(server.make_url("/open-api/v1")), headers=AUTH
        ) as client:
            assert (await client.get("/guides/")).status_code == 200
            assert (await client.get("/guides/")).status_code == 200
            refused = await client.get("/guides/")
            assert (refused.status_code, refused.headers["Retry-After"]) == (429, "2")
            clock[0] = midnight - 0.25
            refused = await client.get("/guides/")
            assert refused.headers["Retry-After"] == "1"
            assert refused.json() == {
                "detail": "Request was throttled. Expected available in 1 second."
            }
            clock[0] = midnight
            assert (await client.get("/guides/")).status_code == 200
            config = (await client.get(str(server.make_url("/__sandbox/config")))).json()
            assert (config["requests_today"], config["quota_resets_in_seconds"]) == (1, DAY)
            assert config["now"] == time.strftime(
                "%Y-%m-%dT%H:%M:%S.000000+0000", time.gmtime(midnight)
            )
    finally:
        await server.close()


def test_config_rejects_unknown_keys_and_bad_values(sandbox: Sandbox) -> None:
    config = sandbox.root("guidebook") + "/__sandbox/config"
    for body, error in (
        ({"colour": 1}, "unknown config key: colour"),
        ({"daily_request_budget": 0}, "invalid value for daily_request_budget: 0"),
        ({"webhook_url": "ftp://x"}, "invalid value for webhook_url: 'ftp://x'"),
        ({"webhook_events": "Builder-SessionCreated"}, "invalid value for webhook_events: "),
        ({"clock_offset_seconds": True}, "invalid value for clock_offset_seconds: True"),
    ):
        response = httpx.post(config, json=body)
        assert response.status_code == 400
        assert response.json()["error"].startswith(error)
    assert httpx.post(config, content=b"[1]").status_code == 400
    shown = httpx.get(config).json()
    assert (shown["daily_request_budget"], shown["webhook_url"]) == (10_000, None)


# --- publishing ----------------------------------------------------------------------------------


def test_publish_is_accepted_twice_a_minute_per_guide(sandbox: Sandbox) -> None:
    root = sandbox.root("guidebook")
    with httpx.Client(base_url=root + "/open-api/v1.1", headers=AUTH) as client:
        first = client.post(f"/guides/{CDC}/publish/")
        assert first.status_code == 202
        assert first.json() == {"id": CDC, "detail": "Publishing has been queued."}
        assert client.post(f"/guides/{CDC}/publish/").status_code == 202
        third = client.post(f"/guides/{CDC}/publish/")
        assert third.status_code == 429
        wait = int(third.headers["Retry-After"])
        assert 58 <= wait <= 60
        assert third.json() == {
            "detail": f"Request was throttled. Expected available in {wait} seconds."
        }
        # Another guide has its own allowance, on the v1 paths as well.
        assert (
            httpx.post(f"{root}/open-api/v1/guides/{MDS}/publish/", headers=AUTH).status_code == 202
        )
    publishes = httpx.get(root + "/__sandbox/guidebook/publishes").json()["publishes"]
    assert [(p["guide"], p["source"], p["open_api_version"]) for p in publishes] == [
        (CDC, "open_api", "v1.1"),
        (CDC, "open_api", "v1.1"),
        (MDS, "open_api", "v1"),
    ]
    assert publishes[0]["account"] == SANDBOX_ACCOUNT_ID
    assert publishes[0]["time"].endswith("+0000")
    # Sixty-one seconds on, the window has moved.
    httpx.post(root + "/__sandbox/config", json={"clock_offset_seconds": 61}).raise_for_status()
    assert (
        httpx.post(f"{root}/open-api/v1.1/guides/{CDC}/publish/", headers=AUTH).status_code == 202
    )


def test_publish_errors(sandbox: Sandbox, gb: httpx.Client, gb2: httpx.Client) -> None:
    listed = gb.get(f"/guides/{CDC}/publish/")
    assert listed.status_code == 405
    assert listed.json() == {"detail": 'Method "GET" not allowed.'}
    assert listed.headers["Allow"] == "POST, OPTIONS"
    assert gb.patch(f"/guides/{CDC}/publish/", json={}).status_code == 405
    for client, guide in ((gb, 1), (gb, RMF), (gb2, CDC), (gb, "abc")):
        response = client.post(f"/guides/{guide}/publish/")
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
    assert gb2.post(f"/guides/{RMF}/publish/").status_code == 202
    # Only guides publish; other actions are Django's 404 page.
    assert (
        gb.post(f"/sessions/{FIRST_SESSION}/publish/")
        .headers["Content-Type"]
        .startswith("text/html")
    )
    assert gb.post(f"/guides/{CDC}/unpublish/").status_code == 404
    assert gb.post(f"/guides/{CDC}/publish").status_code == 301
    assert httpx.post(sandbox.base_url("guidebook") + f"/guides/{CDC}/publish/").status_code == 401
    # "attendees_estimate ... Must be filled to publish."
    gb.patch(f"/guides/{MDS}/", json={"attendees_estimate": None}).raise_for_status()
    unfilled = gb.post(f"/guides/{MDS}/publish/")
    assert unfilled.status_code == 400
    assert unfilled.json() == {"attendees_estimate": ["This field is required to publish."]}
    publishes = httpx.get(sandbox.root("guidebook") + "/__sandbox/guidebook/publishes").json()
    assert [(p["guide"], p["account"]) for p in publishes["publishes"]] == [
        (RMF, SANDBOX_SECOND_ACCOUNT_ID)
    ]


def test_publishing_counts_against_the_daily_quota(sandbox: Sandbox, gb: httpx.Client) -> None:
    config = sandbox.root("guidebook") + "/__sandbox/config"
    httpx.post(config, json={"daily_request_budget": 1}).raise_for_status()
    assert gb.post(f"/guides/{CDC}/publish/").status_code == 202
    assert gb.post(f"/guides/{MDS}/publish/").status_code == 429


# --- images --------------------------------------------------------------------------------------


def test_image_patch_replace_and_remove(gb: httpx.Client) -> None:
    url = f"/sessions/{FIRST_SESSION}/"
    patched = gb.patch(
        url,
        data={"name": "Breakfast (with poster)", "schedule_tracks": [str(KEYNOTES)]},
        files={"image": ("poster.png", PNG, "image/png")},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["schedule_tracks"]) == ("Breakfast (with poster)", [KEYNOTES])
    png_url = body["image"]
    assert png_url.startswith("http://127.0.0.1:")
    assert png_url.endswith(".png")
    served = httpx.get(png_url)
    assert (served.content, served.headers["Content-Type"]) == (PNG, "image/png")
    assert gb.get(url).json()["image"] == png_url

    replaced = gb.patch(url, files={"image": ("poster.jpg", JPEG, "image/jpeg")}).json()
    assert replaced["image"] != png_url
    assert replaced["image"].endswith(".jpg")
    assert httpx.get(replaced["image"]).content == JPEG
    assert replaced["name"] == "Breakfast (with poster)"

    # A file input left empty (no file chosen) changes nothing.
    kept = gb.patch(url, files={"image": ("", b"", "application/octet-stream")})
    assert kept.json()["image"] == replaced["image"]

    removed = gb.patch(url, json={"image": None})
    assert (removed.status_code, removed.json()["image"]) == (200, None)
    assert gb.get(url).json()["image"] is None

    again = gb.patch(url, files={"image": ("p.png", PNG, "image/png")}).json()
    assert again["image"] == png_url  # the same content, the same name
    # An empty multipart value clears it too, beside other fields.
    cleared = gb.patch(url, files={"image": (None, b"")}, data={"rank": "2.5"})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["image"], cleared.json()["rank"]) == (None, 2.5)


def test_multipart_create_with_image_and_lists(gb: httpx.Client) -> None:
    created = gb.post(
        "/sessions/",
        data={
            "guide": str(CDC),
            "name": "Poster session",
            "start_time": "2027-04-21T16:00:00Z",
            "schedule_tracks": [str(WEB), str(DATA)],
            "locations": [str(BALLROOM_A)],
        },
        files={"image": ("poster.jpg", JPEG, "image/jpeg")},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["schedule_tracks"], body["locations"]) == ([WEB, DATA], [BALLROOM_A])
    assert httpx.get(body["image"]).content == JPEG
    empty = gb.post(
        "/sessions/",
        data={"guide": str(CDC), "name": "Empty", "start_time": "2027-04-21T16:00:00Z"},
        files={"image": ("empty.png", b"", "image/png")},
    )
    assert empty.json() == {"image": ["The submitted file is empty."]}
