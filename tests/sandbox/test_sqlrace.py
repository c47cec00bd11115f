"""The SQL Race emulator over real HTTP: tokens, both dialects, paging, shapes, encoding, faults."""

from __future__ import annotations

import asyncio
import itertools
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
