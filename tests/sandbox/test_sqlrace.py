"""The SQL Race emulator over real HTTP: tokens, both dialects, paging, shapes, encoding, faults."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from http.client import HTTPConnection
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer

from sessiongraph.sandbox.sqlrace import STATE_CODES, create_app
from tests._servers import Sandbox

JSON = {"Accept": "application/json"}
CREDENTIALS = {"grant_type": "password", "username": "admin", "password": "admin"}
SEASON, SIM, CACHE = "Season2024", "Simulator", "Live%20Session%20Cache"
DETAIL_NAMES = [
    "Session Description",
    "Session Name",
    "Session Number",
    "Driver",
    "Car",
    "Circuit",
    "Race/Test",
    "Date of recording",
]


class Api:
    """A client holding one token, speaking JSON unless told otherwise."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        response = http.post("/token", data=CREDENTIALS)
        assert response.status_code == 200, response.text
        self.token: str = response.json()["access_token"]

    def get(
        self, path: str, headers: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.token}"} | JSON
        return self.http.get(path, params=params, headers=auth | (headers or {}))

    def json(self, path: str, **params: Any) -> Any:
        response = self.get(path, **params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def sessions(self, connection: str, prefix: str = "/api") -> list[dict[str, Any]]:
        """Every session, paging with the default page size until a short page."""
        found: list[dict[str, Any]] = []
        for page in range(10):
            batch = self.json(f"{prefix}/connections/{connection}/sessions", page=page)
            found += batch
            if len(batch) < 50:
                return found
        raise AssertionError("paging never ended")


def key_of(session: dict[str, Any]) -> str:
    key = session["Key"]
    return str(key["value"] if isinstance(key, dict) else key)


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.root("sqlrace"), timeout=10) as client:
        yield client


@pytest.fixture
def api(http: httpx.Client) -> Api:
    return Api(http)


@pytest.fixture
async def short_lived() -> AsyncIterator[httpx.AsyncClient]:
    """A separate emulator whose tokens live one second."""
    async with (
        TestServer(create_app(token_lifetime=1)) as server,
        httpx.AsyncClient(base_url=str(server.make_url("")), timeout=10) as client,
    ):
        yield client


def parse_xml(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 - our own emulator's output, not untrusted input


def issued(http: httpx.Client) -> int:
    return int(http.get("/__sandbox/sqlrace/tokens").json()["issued"])


# --- tokens -----------------------------------------------------------------------------------


def test_token_is_issued_counted_and_reset_invalidates_it(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    response = http.post("/token", data=CREDENTIALS)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert len(body["access_token"]) > 60
    assert response.headers["Cache-Control"] == "no-cache"
    assert issued(http) == 1
    bearer = {"Authorization": f"Bearer {body['access_token']}"} | JSON
    assert http.get("/api/connections", headers=bearer).status_code == 200
    # The scheme is matched case-insensitively: the docs write "bearer".
    lower = {"Authorization": f"bearer {body['access_token']}"} | JSON
    assert http.get("/api/connections", headers=lower).status_code == 200

    sandbox.reset("sqlrace")
    assert issued(http) == 0
    assert http.get("/api/connections", headers=bearer).status_code == 401


def test_bad_credentials_and_grant_types_get_no_token(http: httpx.Client) -> None:
    wrong = http.post("/token", data=CREDENTIALS | {"password": "nope"})
    assert wrong.status_code == 400
    assert wrong.json() == {
        "error": "invalid_grant",
        "error_description": "The user name or password is incorrect.",
    }
    unsupported = http.post("/token", data=CREDENTIALS | {"grant_type": "client_credentials"})
    assert unsupported.status_code == 400
    assert unsupported.json() == {"error": "unsupported_grant_type"}
    # JSON is not the documented form encoding, so the grant type is not seen.
    assert http.post("/token", json=CREDENTIALS).json() == {"error": "unsupported_grant_type"}
    assert issued(http) == 0


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic YWRtaW46YWRtaW4=", "Bearer", ""],
)
def test_api_refuses_missing_or_wrong_tokens(http: httpx.Client, authorization: str | None) -> None:
    headers = JSON | ({"Authorization": authorization} if authorization is not None else {})
    response = http.get(f"/api/connections/{SEASON}/sessions", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"Message": "Authorization has been denied for this request."}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_revoking_tokens_forces_a_new_one(api: Api, http: httpx.Client) -> None:
    assert api.get("/api/connections").status_code == 200
    assert http.delete("/__sandbox/sqlrace/tokens").json() == {"revoked": 1}
    assert api.get("/api/connections").status_code == 401
    assert Api(http).get("/api/connections").status_code == 200
    assert issued(http) == 2


async def test_expired_token_is_refused(short_lived: httpx.AsyncClient) -> None:
    response = await short_lived.post("/token", data=CREDENTIALS)
    assert response.json()["expires_in"] == 0
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"} | JSON
    assert (await short_lived.get("/api/connections", headers=headers)).status_code == 200
    await asyncio.sleep(1.1)
    expired = await short_lived.get("/api/connections", headers=headers)
    assert expired.status_code == 401
    assert expired.json()["Message"] == "Authorization has been denied for this request."


# --- dialects and data ------------------------------------------------------------------------


def test_both_dialects_list_the_same_connections(api: Api) -> None:
    old = api.json("/api/connections")
    v1 = api.json("/api/v1/connections")
    names = ["Season2024", "Simulator", "Live Session Cache"]
    assert [c["Identifier"] for c in old] == names
    assert [c["Identifier"] for c in v1] == names
    # Oct 2018 carries FriendlyName; the v1 examples leave it out.
    assert [c["FriendlyName"] for c in old] == names
    assert all("FriendlyName" not in c for c in v1)
    assert [c["IsSqlite"] for c in old] == [False, False, True]
    cache = old[2]
    assert cache["RootPath"] is None
    assert cache["ServerName"].startswith("DbEngine=SQLite;Data Source=C:\\Users\\")
    assert cache["DatabaseName"].endswith("LiveSessionCache.ssn2")
    assert old[0]["RootPath"] == "D:\\SQLRace_Filestream"
    assert api.json(f"/api/v1/connections/{SEASON}")["DatabaseName"] == "SQLRACE2024"
    assert api.sessions(SIM, "/api/v1") == api.sessions(SIM)


def test_sessions_page_from_zero_until_a_short_page(api: Api) -> None:
    path = f"/api/connections/{SEASON}/sessions"
    pages = [api.json(path, page=n) for n in range(4)]
    assert [len(p) for p in pages] == [50, 50, 14, 0]
    keys = [key_of(s) for p in pages for s in p]
    assert len(set(keys)) == 114
    # Newest first, so pages continue one another.
    stamps = [s["TimeOfRecording"] for p in pages for s in p]
    assert stamps == sorted(stamps, reverse=True)
    sized = [api.json(path, page=n, pageSize=40) for n in range(3)]
    assert [len(p) for p in sized] == [40, 40, 34]
    assert [key_of(s) for p in sized for s in p] == keys
    # Web API binds query names case-insensitively.
    assert len(api.json(path, page=2, pagesize=40)) == 34
    assert [len(api.sessions(c)) for c in (SEASON, SIM, CACHE)] == [114, 76, 24]


@pytest.mark.parametrize("params", [{"page": -1}, {"pageSize": 0}, {"pageSize": "ten"}])
def test_bad_paging_is_rejected(api: Api, params: dict[str, Any]) -> None:
    response = api.get(f"/api/connections/{SEASON}/sessions", **params)
    assert response.status_code == 400
    assert response.json()["Message"] == "The request is invalid."


def test_filter_expressions_are_refused_not_ignored(api: Api) -> None:
    response = api.get(f"/api/connections/{SEASON}/sessions", filter="LapsCount > 5")
    assert response.status_code == 400


def test_sessions_filtered_by_details_under_both_parameter_names(api: Api) -> None:
    path = f"/api/connections/{SEASON}/sessions"
    by_details = api.json(path, details="Driver:KHA,Circuit:Jeddah", pageSize=200)
    by_items = api.json(path, items="Driver:KHA,Circuit:Jeddah", pageSize=200)
    assert len(by_details) == 14  # 3 + 4 + 3 + 3 + 1 runs in one weekend
    assert by_items == by_details


def test_key_and_state_come_in_both_documented_shapes(api: Api) -> None:
    season, sim, cache = (api.sessions(c) for c in (SEASON, SIM, CACHE))
    assert all(set(s["Key"]) == {"value"} for s in season)
    assert all(isinstance(s["Key"], str) for s in sim + cache)
    assert all(isinstance(s["State"], int) for s in season + cache)
    assert {s["State"] for s in sim} == {"Historical", "Indexed"}
    assert {s["State"] for s in season} == {STATE_CODES["Historical"], STATE_CODES["Created"]}
    assert sorted({s["State"] for s in cache}) == [1, 2, 4, 5]
    # The seed's shape carries TimeZone; the Metadata page's does not.
    assert all(s["TimeZone"] == "UTC" for s in season + cache)
    assert all("TimeZone" not in s for s in sim)


async def test_shapes_can_be_forced_everywhere() -> None:
    app = create_app(key_shape="object", state_shape="name", default_format="json")
    async with (
        TestServer(app) as server,
        httpx.AsyncClient(base_url=str(server.make_url(""))) as client,
    ):
        token = (await client.post("/token", data=CREDENTIALS)).json()["access_token"]
        response = await client.get(
            f"/api/connections/{SIM}/sessions", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    first = response.json()[0]
    assert set(first["Key"]) == {"value"}
    assert first["State"] == "Historical"


def test_session_times_use_dotnet_formats(api: Api) -> None:
    season = api.sessions(SEASON)
    empty = [s for s in season if s["LapsCount"] == 0]
    assert len(empty) == 2
    assert {(s["StartTime"], s["EndTime"]) for s in empty} == {("00:00:00", "00:00:00")}
    newest = season[0]
    assert newest["TimeOfRecording"] == "2024-07-07T15:03:15.5800063"
    assert newest["Identifier"] == "240707150315"
    assert newest["StartTime"] == "15:03:51.9674310"
    # A simulator night shift crosses midnight: its end offset passes one day.
    overnight = api.sessions(SIM)[0]
    assert overnight["TimeOfRecording"].startswith("2024-06-20T23:20:00")
    assert overnight["EndTime"].startswith("1.00:")


def test_live_sessions_are_the_live_states(api: Api) -> None:
    live = api.json(f"/api/connections/{CACHE}/sessions/live")
    assert sorted(s["State"] for s in live) == [STATE_CODES["Live"], STATE_CODES["LiveNotInServer"]]
    assert api.json(f"/api/connections/{SEASON}/sessions/live") == []


def test_details_laps_and_parameters_of_a_session(api: Api) -> None:
    session = api.sessions(SEASON)[0]
    base = f"/api/v1/connections/{SEASON}/sessions/{key_of(session)}"
    details = api.json(base + "/details")
    assert [d["Name"] for d in details] == DETAIL_NAMES
    assert {d["Name"]: d["Value"] for d in details} == {
        "Session Description": "Race",
        "Session Name": "GBR Race KHA",
        "Session Number": "14",
        "Driver": "KHA",
        "Car": "MCL24-01",
        "Circuit": "Silverstone",
        "Race/Test": "Race",
        "Date of recording": "07/07/2024",
    }
    # A detail name with "/" travels as one encoded segment.
    assert api.json(base + "/details/Race%2FTest") == {"Name": "Race/Test", "Value": "Race"}
    assert api.get(base + "/details/Race/Test").status_code == 404

    laps = api.json(base + "/laps")
    assert len(laps) == session["LapsCount"] == 54
    assert (laps[0]["Name"], laps[0]["Number"], laps[0]["CountForFastestLap"]) == (
        "Out Lap",
        0,
        False,
    )
    assert (laps[16]["Name"], laps[16]["CountForFastestLap"]) == ("Lap 16", True)
    assert laps[-1]["Name"] == "In Lap"
    assert laps[0]["StartTime"] == session["StartTime"]
    assert all(a["EndTime"] == b["StartTime"] for a, b in itertools.pairwise(laps))
    assert all(lap["LapTime"].startswith("00:01:") for lap in laps[1:-1])
    assert api.json(base + "/laps/16") == laps[16]
    assert api.get(base + "/laps/99").status_code == 404

    parameters = api.json(base + "/parameters")
    assert len(parameters) == 24
    speed = parameters[0]
    assert speed == {
        "Identifier": "vCar:Chassis",
        "Name": "vCar",
        "Description": "Car speed",
        "Units": "km/h",
        "Format": "%5.1f",
        "MinimumValue": 0.0,
        "MaximumValue": 400.0,
        "ParentParameterGroup": "Chassis",
        "Frequency": 200.0,
    }
    tyres = api.json(base + "/parameters", contains="tyre")
    assert [p["Identifier"] for p in tyres][:2] == ["pTyreFL:Chassis", "pTyreFR:Chassis"]
    assert len(tyres) == 6
    assert [len(api.json(base + "/parameters", page=n, pageSize=10)) for n in range(3)] == [
        10,
        10,
        4,
    ]


def test_unknown_connection_session_and_route_are_404(api: Api) -> None:
    missing = api.get("/api/connections/Season2025/sessions")
    assert missing.status_code == 404
    assert missing.json() == {"Message": "Connection 'Season2025' was not found."}
    guid = "00000000-0000-4000-8000-000000000000"
    unknown = api.get(f"/api/connections/{SEASON}/sessions/{guid}/laps")
    assert unknown.status_code == 404
    assert guid in unknown.json()["Message"]
    assert api.get("/api/v2/connections").status_code == 404
    # No single-session route is documented, so none is served by default.
    assert api.get(f"/api/connections/{SEASON}/sessions/{guid}").status_code == 404
    wrong_method = api.http.post("/api/connections", headers=JSON)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "GET"


# --- names in paths ---------------------------------------------------------------------------


def test_connection_name_with_spaces_is_percent_decoded_once(api: Api) -> None:
    assert api.json(f"/api/connections/{CACHE}")["Identifier"] == "Live Session Cache"
    # "+" means a space only in queries; in a path it is a literal plus.
    assert api.get("/api/connections/Live+Session+Cache").status_code == 404
    assert api.get("/api/connections/Live%2520Session%2520Cache").status_code == 404


@pytest.mark.parametrize(
    "name",
    [
        "Season2024%2Fsessions",
        "x%2F..%2F..%2Fconnections",
        "%2E%2E",
        "..%2FSeason2024",
        "Season2024%3Fpage=1",
        "Season2024%23x",
    ],
)
def test_encoded_separators_never_reach_another_route(api: Api, name: str) -> None:
    for suffix in ("", "/sessions"):
        response = api.get(f"/api/connections/{name}{suffix}")
        assert response.status_code == 404, (name, suffix)
        assert response.json()["Message"].startswith("Connection '")


@pytest.mark.parametrize(
    "target",
    [
        "/api/connections/x/../Season2024",
        "/api/connections/Season2024/sessions/../../Simulator/sessions",
        "/api/../token",
        "/api%2Fconnections",
    ],
)
def test_raw_dot_segments_are_not_normalised(sandbox: Sandbox, api: Api, target: str) -> None:
    # httpx would resolve the dots itself, so this request goes out byte for byte.
    host = sandbox.root("sqlrace").removeprefix("http://")
    connection = HTTPConnection(host, timeout=10)
    try:
        connection.request("GET", target, headers={"Authorization": f"Bearer {api.token}"} | JSON)
        response = connection.getresponse()
        assert response.status == 404
        assert b"No HTTP resource was found" in response.read()
    finally:
        connection.close()


# --- content negotiation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "xml"),
        ("*/*", "xml"),
        ("application/json", "json"),
        ("text/json", "json"),
        ("application/xml;q=0.5, application/json", "json"),
        ("application/json;q=0.1, text/xml", "xml"),
        ("application/json;q=0", "xml"),
    ],
)
def test_accept_header_chooses_json_or_xml(api: Api, accept: str | None, expected: str) -> None:
    headers = {"Authorization": f"Bearer {api.token}"} | ({"Accept": accept} if accept else {})
    response = api.http.get("/api/connections", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"application/{expected}; charset=utf-8"
    if expected == "json":
        assert len(response.json()) == 3
        return
    root = parse_xml(response.text)
    namespace = "{http://schemas.datacontract.org/2004/07/MAT.TAP.Query.Api.Models}"
    assert root.tag == namespace + "ArrayOfConnection"
    names = [c.findtext(namespace + "Identifier") for c in root]
    assert names == ["Season2024", "Simulator", "Live Session Cache"]
    root_path = root[2].find(namespace + "RootPath")
    assert root_path is not None
    assert root_path.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"


def test_xml_keeps_the_key_object_and_errors(api: Api) -> None:
    sessions = api.get(f"/api/connections/{SEASON}/sessions", {"Accept": "application/xml"})
    namespace = "{http://schemas.datacontract.org/2004/07/MAT.TAP.Query.Api.Models}"
    first = parse_xml(sessions.text)[0]
    assert first.findtext(f"{namespace}Key/{namespace}value") == key_of(api.sessions(SEASON)[0])
    assert first.findtext(namespace + "State") == "2"
    error = api.http.get("/api/connections", headers={"Accept": "text/xml"})
    assert error.status_code == 401
    assert parse_xml(error.text).findtext("Message") == (
        "Authorization has been denied for this request."
    )


# --- faults -----------------------------------------------------------------------------------


def test_faults_apply_to_the_api_and_the_token_endpoint(
    sandbox: Sandbox, api: Api, http: httpx.Client
) -> None:
    sandbox.faults("sqlrace", error_rate=1.0, error_status=503)
    failed = api.get("/api/connections")
    assert failed.status_code == 503
    assert failed.json() == {"Message": "Service Unavailable"}
    assert http.post("/token", data=CREDENTIALS).status_code == 503
    # Control paths are exempt from faults and counting.
    assert issued(http) == 1
    assert sandbox.requests("sqlrace") == 3

    sandbox.faults("sqlrace", error_rate=1.0, error_status=429, retry_after=2.5)
    limited = api.get("/api/connections")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.json() == {"Message": "Too Many Requests"}

    sandbox.faults("sqlrace", error_rate=1.0, error_status=500, path_prefix="/token")
    assert api.get("/api/connections").status_code == 200
    broken = http.post("/token", data=CREDENTIALS)
    assert broken.status_code == 500
    assert broken.json() == {"Message": "An error has occurred."}
    assert "Retry-After" not in broken.headers


def test_requests_are_counted_by_path(sandbox: Sandbox, api: Api) -> None:
    api.json(f"/api/connections/{CACHE}/sessions", page=0)
    stats = sandbox.stats("sqlrace")
    assert stats["requests"] == 2
    assert stats["by_path"] == {"/token": 1, "/api/connections/Live Session Cache/sessions": 1}


async def test_data_is_identical_on_every_start(api: Api) -> None:
    expected = api.sessions(SIM)[:7]
    async with (
        TestServer(create_app(default_page_size=7, default_format="json")) as server,
        httpx.AsyncClient(base_url=str(server.make_url(""))) as client,
    ):
        token = (await client.post("/token", data=CREDENTIALS)).json()["access_token"]
        response = await client.get(
            f"/api/connections/{SIM}/sessions", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.json() == expected


# --- parameter samples ------------------------------------------------------------------------

FAST = "vCar:Chassis,nEngine:Chassis,NGear:Chassis,rThrottle:Chassis"


def ticks(text: str) -> int:
    """A .NET TimeSpan (`[d.]hh:mm:ss[.fffffff]`) as 100 ns ticks."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d\d):(\d\d):(\d\d)(?:\.(\d{7}))?", text)
    assert match is not None, text
    days, h, m, s, fraction = match.groups()
    seconds = ((int(days or 0) * 24 + int(h)) * 60 + int(m)) * 60 + int(s)
    return seconds * 10_000_000 + int(fraction or 0)


def test_ticks_helper_reads_dotnet_timespans() -> None:
    assert ticks("00:00:01") == 10_000_000
    assert ticks("10:34:05.5000000") == (10 * 3600 + 34 * 60 + 5) * 10_000_000 + 5_000_000
    assert ticks("1.00:00:00.0000001") == 86_400 * 10_000_000 + 1


def session_base(api: Api, connection: str, laps: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    session = next(s for s in api.sessions(connection) if laps[0] <= s["LapsCount"] <= laps[1])
    return f"/api/connections/{connection}/sessions/{key_of(session)}", session


@pytest.fixture
def practice(api: Api) -> tuple[str, dict[str, Any]]:
    """A short Season2024 run (5 to 8 laps)."""
    return session_base(api, SEASON, (7, 10))


@pytest.fixture
def race(api: Api) -> tuple[str, dict[str, Any]]:
    """The newest Season2024 race: 54 laps, about 84 minutes."""
    return session_base(api, SEASON, (50, 60))


def test_same_request_gives_identical_bodies(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    path = f"{base}/parameters/{FAST}/25/data"
    first = api.get(path, page=3, pageSize=500)
    second = api.get(path, page=3, pageSize=500)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    assert first.content == second.content
    assert len(first.json()) == 500


async def test_samples_are_identical_on_a_fresh_emulator(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    path = f"{base}/parameters/{FAST},gLat:Chassis;Max/7.5/data"
    expected = api.get(path, page=1, pageSize=300).content
    async with (
        TestServer(create_app()) as server,
        httpx.AsyncClient(base_url=str(server.make_url(""))) as client,
    ):
        token = (await client.post("/token", data=CREDENTIALS)).json()["access_token"]
        response = await client.get(
            path,
            params={"page": 1, "pageSize": 300},
            headers={"Authorization": f"Bearer {token}"} | JSON,
        )
    assert response.content == expected


def test_sample_shape_grid_and_default_page(api: Api, practice: tuple[str, dict[str, Any]]) -> None:
    base, session = practice
    samples = api.json(f"{base}/parameters/{FAST}/10/data")
    assert len(samples) == 200  # the reference's default page size for data
    assert set(samples[0]) == {"Time", "Values"}
    assert list(samples[0]["Values"]) == FAST.split(",")
    assert all(isinstance(v, float) for s in samples for v in s["Values"].values())
    start = ticks(session["StartTime"])
    assert [ticks(s["Time"]) for s in samples] == [start + n * 1_000_000 for n in range(200)]
    # Seven fractional digits, like the session's own times.
    assert samples[0]["Time"] == session["StartTime"]
    # The v1 dialect serves the same samples.
    v1 = base.replace("/api/", "/api/v1/", 1)
    assert api.json(f"{v1}/parameters/{FAST}/10/data") == samples


def test_count_equals_the_samples_of_all_pages_and_pages_partition(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, session = practice
    path = f"{base}/parameters/vCar:Chassis,NGear:Chassis/20/data"
    count = api.json(path + "/count", lap=2)
    assert isinstance(count, int)
    pages: list[list[dict[str, Any]]] = []
    for page in itertools.count():
        batch = api.json(path, lap=2, page=page, pageSize=700)
        pages.append(batch)
        if len(batch) < 700:
            break
    assert all(len(p) == 700 for p in pages[:-1])
    flat = [s for p in pages for s in p]
    assert len(flat) == count
    assert flat == api.json(path, lap=2, pageSize=100_000)
    times = [ticks(s["Time"]) for s in flat]
    assert times == sorted(set(times))
    assert api.json(path, lap=2, page=len(pages) + 3, pageSize=700) == []
    # The whole session: samples at 20 Hz from StartTime, before EndTime.
    span = ticks(session["EndTime"]) - ticks(session["StartTime"])
    assert api.json(path + "/count") == -(-span // 500_000)


def test_aggregations_relate_to_the_native_samples(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    ids = "vCar:Chassis;Min,vCar:Chassis;Mean,vCar:Chassis;Max,vCar:Chassis;first,vCar:Chassis"
    window = {"lap": 3}
    coarse = api.json(f"{base}/parameters/{ids}/20/data", pageSize=5000, **window)
    native = api.json(f"{base}/parameters/vCar:Chassis/200/data", pageSize=50_000, **window)
    assert 10 * len(coarse) - 10 < len(native) <= 10 * len(coarse)
    by_time = {s["Time"]: s["Values"]["vCar:Chassis"] for s in native}
    spread = 0.0
    for n, sample in enumerate(coarse):
        values = sample["Values"]
        low, mean, high = (values[f"vCar:Chassis;{a}"] for a in ("Min", "Mean", "Max"))
        assert low <= mean <= high
        assert low <= values["vCar:Chassis;first"] <= high
        assert values["vCar:Chassis"] == mean  # Mean is the default
        # First is the native sample at the interval's start; the others cover its 10 samples.
        assert values["vCar:Chassis;first"] == by_time[sample["Time"]]
        interval = [s["Values"]["vCar:Chassis"] for s in native[10 * n : 10 * n + 10]]
        assert native[10 * n]["Time"] == sample["Time"]
        if n == len(coarse) - 1:
            break  # its interval runs past the lap's end, beyond the native samples fetched
        assert len(interval) == 10
        assert (low, high) == (min(interval), max(interval))
        assert mean == pytest.approx(sum(interval) / len(interval), abs=1e-9)
        spread = max(spread, high - low)
    assert spread > 5  # braking and accelerating within 50 ms intervals


def test_frequency_above_the_native_rate_holds_the_last_sample(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    fuel = api.json(f"{base}/parameters/MFuel:Chassis;Max,MFuel:Chassis;Min/4/data", pageSize=40)
    assert all(len(set(s["Values"].values())) == 1 for s in fuel)
    values = [s["Values"]["MFuel:Chassis;Max"] for s in fuel]
    assert values[0:4] == [values[0]] * 4  # recorded at 1 Hz
    assert values == sorted(values, reverse=True)


def test_from_is_inclusive_and_to_exclusive(api: Api, practice: tuple[str, dict[str, Any]]) -> None:
    base, session = practice
    path = f"{base}/parameters/vCar:Chassis/10/data"
    whole = api.json(path, pageSize=100_000)
    pick = whole[1234]["Time"]
    since = api.json(path, pageSize=10, **{"from": pick})
    assert [s["Time"] for s in since] == [s["Time"] for s in whole[1234:1244]]
    until = api.json(path, pageSize=100_000, to=pick)
    assert until == whole[:1234]
    between = api.json(path, pageSize=100_000, to=whole[1300]["Time"], **{"from": pick})
    assert between == whole[1234:1300]
    assert api.json(path + "/count", to=whole[1300]["Time"], **{"from": pick}) == 66
    # Short forms: hh:mm and a fraction shorter than seven digits.
    start = ticks(session["StartTime"])
    minute = (start // 600_000_000 + 2) * 600_000_000
    hhmm = f"{minute // 36_000_000_000:02d}:{minute // 600_000_000 % 60:02d}"
    first = api.json(path, pageSize=1, **{"from": hhmm})[0]
    assert ticks(first["Time"]) >= minute > ticks(first["Time"]) - 1_000_000
    half = f"{hhmm}:05.5"
    assert ticks(api.json(path, pageSize=1, **{"from": half})[0]["Time"]) >= minute + 55_000_000
    # Nanoseconds since midnight (Feb 2019) select the same window.
    nanos = {"fromNanos": ticks(pick) * 100, "toNanos": ticks(whole[1300]["Time"]) * 100}
    assert api.json(path, pageSize=100_000, **nanos) == between
    # An empty window is an empty answer.
    assert api.json(path, to=session["StartTime"]) == []
    assert api.json(path + "/count", **{"from": "23:59"}) == 0


def test_lap_selects_that_laps_time_span(api: Api, practice: tuple[str, dict[str, Any]]) -> None:
    base, _ = practice
    laps = api.json(base + "/laps")
    path = f"{base}/parameters/vCar:Chassis/50/data"
    whole = api.json(path, pageSize=1_000_000)
    for lap in (laps[0], laps[3], laps[-1]):
        start, end = ticks(lap["StartTime"]), ticks(lap["EndTime"])
        expected = [s for s in whole if start <= ticks(s["Time"]) < end]
        assert api.json(path, lap=lap["Number"], pageSize=1_000_000) == expected
        assert api.json(path + "/count", lap=lap["Number"]) == len(expected)
        ranges = api.json(path + "/timeRanges", lap=lap["Number"])
        assert len(ranges) == 1
        assert ticks(ranges[0]["StartTime"]) == ticks(expected[0]["Time"])
        assert ranges[0]["EndTime"] == lap["EndTime"]
    missing = api.get(path, lap=99)
    assert missing.status_code == 404
    assert missing.json() == {"Message": "Lap '99' was not found."}
    assert api.get(path, lap="first").status_code == 400


def test_time_ranges_cover_the_session_or_the_filtered_stretches(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, session = practice
    path = f"{base}/parameters/vCar:Chassis/10/data"
    ranges = api.json(path + "/timeRanges")
    span = ticks(session["EndTime"]) - ticks(session["StartTime"])
    assert ranges == [
        {
            "StartTime": session["StartTime"],
            "EndTime": session["EndTime"],
            "Span": api.json(path + "/timeranges")[0]["Span"],
        }
    ]
    assert ticks(ranges[0]["Span"]) == span
    fast = api.json(path + "/timeRanges", filter="vCar:Chassis;gt;280")
    assert len(fast) >= 5  # several straights per flying lap
    for stretch in fast:
        start, end = ticks(stretch["StartTime"]), ticks(stretch["EndTime"])
        assert ticks(session["StartTime"]) <= start < end <= ticks(session["EndTime"])
        assert ticks(stretch["Span"]) == end - start
        inside = api.json(path, pageSize=100_000, **{"from": stretch["StartTime"]}, to=end_of(end))
        assert all(s["Values"]["vCar:Chassis"] > 280 for s in inside)
    assert all(ticks(a["EndTime"]) < ticks(b["StartTime"]) for a, b in itertools.pairwise(fast))


def end_of(tick: int) -> str:
    seconds, fraction = divmod(tick, 10_000_000)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:07d}"


def test_filter_keeps_samples_meeting_every_condition(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    path = f"{base}/parameters/vCar:Chassis,NGear:Chassis;First/10/data"
    condition = "vCar:Chassis;ge;150,NGear:Chassis;First;lt;6,rThrottle:Chassis;eq;100"
    kept = api.json(path, filter=condition, pageSize=100_000)
    assert kept
    assert all(s["Values"]["vCar:Chassis"] >= 150 for s in kept)
    assert all(s["Values"]["NGear:Chassis;First"] < 6 for s in kept)
    assert api.json(path + "/count", filter=condition) == len(kept)
    paged = [api.json(path, filter=condition, page=n, pageSize=50) for n in range(3)]
    assert [s for p in paged for s in p] == kept[:150]
    throttle = api.json(
        f"{base}/parameters/rThrottle:Chassis/10/data",
        pageSize=100_000,
        **{"from": kept[0]["Time"]},
        to=end_of(ticks(kept[-1]["Time"]) + 1),
    )
    full = {s["Time"] for s in throttle if s["Values"]["rThrottle:Chassis"] == 100}
    assert {s["Time"] for s in kept} <= full


@pytest.mark.parametrize(
    "condition",
    ["vCar:Chassis;gt", "vCar:Chassis;about;3", "vCar:Chassis;gt;fast", "nope:Chassis;gt;1"],
)
def test_bad_filters_are_rejected(
    api: Api, practice: tuple[str, dict[str, Any]], condition: str
) -> None:
    base, _ = practice
    response = api.get(f"{base}/parameters/vCar:Chassis/10/data", filter=condition)
    assert response.status_code == 400
    assert response.json()["Message"] == "The request is invalid."


def test_speed_gear_rpm_and_throttle_are_plausible(
    api: Api, race: tuple[str, dict[str, Any]]
) -> None:
    base, session = race
    laps = api.json(base + "/laps")
    path = f"{base}/parameters/{FAST}/10/data"
    data = api.json(path, pageSize=1_000_000)
    speed = [s["Values"]["vCar:Chassis"] for s in data]
    gear = [s["Values"]["NGear:Chassis"] for s in data]
    rpm = [s["Values"]["nEngine:Chassis"] for s in data]
    throttle = [s["Values"]["rThrottle:Chassis"] for s in data]
    assert min(speed) >= 0
    assert 300 < max(speed) <= 360
    assert {g for g in gear if g == int(g)} <= set(range(9))
    assert all(1 <= g <= 8 for g, v in zip(gear, speed, strict=True) if v > 5)
    assert all(3500 <= r <= 13_000 for r in rpm)
    assert all(0 <= t <= 100 for t in throttle)
    # Higher gears at higher speeds, on average.
    whole = [(int(g), v) for g, v in zip(gear, speed, strict=True) if g == int(g) and g >= 1]
    means = [
        sum(v for g, v in whole if g == n) / max(1, sum(1 for g, _ in whole if g == n))
        for n in range(1, 9)
    ]
    assert means == sorted(means)
    # Within a gear, rpm rises with speed.
    fifth = sorted((v, r) for g, v, r in zip(gear, speed, rpm, strict=True) if g == 5)
    assert fifth[0][1] < fifth[-1][1]

    # Each flying lap has slow corners and fast straights; out and in laps are slower.
    times = [ticks(s["Time"]) for s in data]

    def lap_speeds(lap: dict[str, Any]) -> list[float]:
        start, end = ticks(lap["StartTime"]), ticks(lap["EndTime"])
        return speed[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)]

    flying = [lap_speeds(lap) for lap in laps[1:-1]]
    assert all(min(v) < 140 and max(v) > 280 for v in flying)
    assert all(sum(v) / len(v) > 170 for v in flying)
    for edge in (lap_speeds(laps[0]), lap_speeds(laps[-1])):
        assert sum(edge) / len(edge) < min(sum(v) / len(v) for v in flying)
        assert min(edge) < 5  # leaves from, and stops in, the pit box
    # After the in lap the car stands in the garage.
    after = speed[bisect.bisect_left(times, ticks(laps[-1]["EndTime"])) :]
    assert after
    assert set(after) == {0.0}
    # Throttle is full on the straights and off under braking.
    assert sum(1 for t in throttle if t == 100) > len(throttle) * 0.3
    assert sum(1 for t in throttle if t == 0) > len(throttle) * 0.05
    assert session["LapsCount"] == len(laps)


def test_every_listed_parameter_has_samples_within_its_range(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    parameters = api.json(base + "/parameters", pageSize=100)
    ids = ",".join(p["Identifier"] for p in parameters)
    for aggregation in ("Min", "Max"):
        tokens = ",".join(f"{i};{aggregation}" for i in ids.split(","))
        data = api.json(f"{base}/parameters/{tokens}/5/data", pageSize=100_000)
        assert len(data) > 1000
        for p in parameters:
            values = [s["Values"][f"{p['Identifier']};{aggregation}"] for s in data]
            assert p["MinimumValue"] <= min(values), p["Identifier"]
            assert max(values) <= p["MaximumValue"], p["Identifier"]
            assert len(set(values)) > 1 or p["Identifier"] in ("rBrakeBias:Chassis",), p


def test_live_and_simulator_sessions_have_samples(api: Api) -> None:
    live = api.json(f"/api/connections/{CACHE}/sessions/live")
    night = api.sessions(SIM)[0]  # crosses midnight
    for connection, session in ((CACHE, live[0]), (SIM, night)):
        base = f"/api/connections/{connection}/sessions/{key_of(session)}"
        ranges = api.json(f"{base}/parameters/vCar:Chassis/1/data/timeRanges")
        assert ranges[0]["StartTime"] == session["StartTime"]
        assert ranges[0]["EndTime"] == session["EndTime"]
    base = f"/api/connections/{SIM}/sessions/{key_of(night)}/parameters/vCar:Chassis/1/data"
    late = api.json(base, pageSize=5, **{"from": "1.00:00:00"})
    assert [s["Time"][:5] for s in late] == ["1.00:"] * 5


def test_sessions_without_parameters_and_unknown_parameters_are_404(api: Api) -> None:
    season = api.sessions(SEASON)
    empty = next(s for s in season if s["LapsCount"] == 0)
    base = f"/api/connections/{SEASON}/sessions/{key_of(empty)}"
    assert api.json(base + "/parameters") == []
    assert api.get(base + "/parameters/vCar:Chassis/10/data").status_code == 404
    base = f"/api/connections/{SEASON}/sessions/{key_of(season[0])}"
    for ids in ("vCar", "vCar:Chassis,nope:Chassis", "gLat:Chassis;Max,xyz"):
        response = api.get(f"{base}/parameters/{ids}/10/data")
        assert response.status_code == 404, ids
        assert response.json()["Message"].startswith("Parameter '")
        assert api.get(f"{base}/parameters/{ids}/10/data/count").status_code == 404
    guid = "00000000-0000-4000-8000-000000000000"
    missing = api.get(f"/api/connections/{SEASON}/sessions/{guid}/parameters/vCar:Chassis/1/data")
    assert missing.status_code == 404


@pytest.mark.parametrize("frequency", ["0", "-5", "abc", "nan", "inf", "1e3", "10001", "0.0"])
def test_bad_frequencies_are_400(
    api: Api, practice: tuple[str, dict[str, Any]], frequency: str
) -> None:
    base, _ = practice
    for suffix in ("", "/count", "/timeRanges"):
        response = api.get(f"{base}/parameters/vCar:Chassis/{frequency}/data{suffix}")
        assert response.status_code == 400, (frequency, suffix)
        assert response.json()["Message"] == "The request is invalid."


def test_absurd_requests_are_400(api: Api, race: tuple[str, dict[str, Any]]) -> None:
    base, _ = race
    huge = api.get(f"{base}/parameters/vCar:Chassis/10000/data/count")
    assert huge.status_code == 400
    assert "at most 5000000" in huge.json()["MessageDetail"]
    # The same frequency over a short window is fine.
    laps = api.json(base + "/laps")
    assert api.json(f"{base}/parameters/vCar:Chassis/10000/data/count", lap=5) > 500_000
    path = f"{base}/parameters/vCar:Chassis/1/data"
    for params in ({"pageSize": 1_000_001}, {"pageSize": 0}, {"page": -1}, {"from": "25:00"}):
        assert api.get(path, **params).status_code == 400, params
    assert api.get(f"{base}/parameters/vCar:Chassis;Sum/1/data").status_code == 400
    assert laps


@pytest.mark.parametrize(
    ("ids", "status"),
    [
        ("", 400),
        ("vCar:Chassis,", 400),
        (",vCar:Chassis", 400),
        ("..%2F..%2Fdetails", 404),
        ("%2E%2E", 404),
        ("vCar:Chassis%2F10", 404),
        ("vCar:Chassis%3Fpage=1", 404),
        ("vCar:Chassis%23x", 404),
        ("vCar%3AChassis%2C..", 404),
    ],
)
def test_hostile_parameter_ids_never_reach_another_route(
    api: Api, practice: tuple[str, dict[str, Any]], ids: str, status: int
) -> None:
    base, _ = practice
    response = api.get(f"{base}/parameters/{ids}/10/data")
    assert response.status_code == status, ids
    assert set(response.json()) <= {"Message", "MessageDetail"}


@pytest.mark.parametrize(
    "suffix",
    ["vCar:Chassis/../../laps", "vCar:Chassis/10/data/../count", "../parameters/vCar:Chassis/1"],
)
def test_raw_dot_segments_in_data_paths_are_not_normalised(
    sandbox: Sandbox, api: Api, practice: tuple[str, dict[str, Any]], suffix: str
) -> None:
    base, _ = practice
    host = sandbox.root("sqlrace").removeprefix("http://")
    connection = HTTPConnection(host, timeout=10)
    try:
        target = f"{base}/parameters/{suffix}"
        connection.request("GET", target, headers={"Authorization": f"Bearer {api.token}"} | JSON)
        response = connection.getresponse()
        assert response.status == 404
        response.read()
    finally:
        connection.close()


def test_data_needs_a_token_counts_requests_and_takes_faults(
    sandbox: Sandbox, api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    path = f"{base}/parameters/vCar:Chassis/10/data"
    assert api.http.get(path, headers=JSON).status_code == 401
    sandbox.reset("sqlrace")
    fresh = Api(api.http)
    assert fresh.get(path).status_code == 200
    assert fresh.get(path + "/count").status_code == 200
    stats = sandbox.stats("sqlrace")
    assert stats["by_path"][path.replace("%20", " ")] == 1
    assert stats["by_path"][path.replace("%20", " ") + "/count"] == 1
    sandbox.faults("sqlrace", error_rate=1.0, error_status=503)
    assert fresh.get(path).status_code == 503


def test_samples_come_as_xml_without_an_accept_header(
    api: Api, practice: tuple[str, dict[str, Any]]
) -> None:
    base, _ = practice
    auth = {"Authorization": f"Bearer {api.token}"}
    response = api.http.get(f"{base}/parameters/vCar:Chassis,NGear:Chassis/1/data", headers=auth)
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    namespace = "{http://schemas.datacontract.org/2004/07/MAT.TAP.Query.Api.Models}"
    arrays = "{http://schemas.microsoft.com/2003/10/Serialization/Arrays}"
    root = parse_xml(response.text)
    assert root.tag == namespace + "ArrayOfParameterValue"
    assert len(root) == 200
    pairs = root[0].find(namespace + "Values")
    assert pairs is not None
    assert [p.findtext(arrays + "Key") for p in pairs] == ["vCar:Chassis", "NGear:Chassis"]
    expected = api.json(f"{base}/parameters/vCar:Chassis,NGear:Chassis/1/data")[0]
    assert root[0].findtext(namespace + "Time") == expected["Time"]
    assert float(pairs[0].findtext(arrays + "Value") or "nan") == expected["Values"]["vCar:Chassis"]
    count = api.http.get(f"{base}/parameters/vCar:Chassis/1/data/count", headers=auth)
    assert parse_xml(count.text).text == str(
        api.json(f"{base}/parameters/vCar:Chassis/1/data/count")
    )


def test_a_whole_race_at_100_hz_is_served_in_seconds(
    api: Api, race: tuple[str, dict[str, Any]]
) -> None:
    base, session = race
    path = f"{base}/parameters/{FAST}/100/data"
    count = api.json(path + "/count")
    assert count > 500_000
    api.http.timeout = httpx.Timeout(60)
    started = time.monotonic()
    response = api.get(path, pageSize=1_000_000)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    data = response.json()
    assert len(data) == count
    assert data[-1]["Time"] < session["EndTime"] or ticks(data[-1]["Time"]) < ticks(
        session["EndTime"]
    )
    assert elapsed < 20, elapsed
