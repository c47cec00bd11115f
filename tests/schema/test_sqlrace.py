"""SQL Race through the gateway to the emulator: tokens, paging, shapes, path safety, failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from sessiongraph.sandbox.sqlrace import create_app
from sessiongraph.schema.pagination import encode_cursor
from tests._servers import Gateway, LoopThread, Sandbox

STATE_NAMES = "0=Created,1=Exporting,2=Historical,3=Indexed,4=Live,5=LiveNotInServer"
CONNECTIONS = "{ connections { name } }"
SESSIONS = """query($name: String!, $first: Int, $after: String, $filter: SqlRaceSessionFilter) {
  connection(name: $name) {
    sessions(first: $first, after: $after, filter: $filter) {
      pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { cursor node { key state stateCode timeZone startsAt endsAt timeOfRecording } }
    }
  }
}"""
SESSION = """query($connection: String!, $key: String!) {
  sqlRaceSession(connection: $connection, key: $key) { key identifier lapsCount source }
}"""


def tokens_issued(sandbox: Sandbox) -> int:
    response = sandbox.http.get(sandbox.root("sqlrace") + "/__sandbox/sqlrace/tokens")
    response.raise_for_status()
    return int(response.json()["issued"])


def revoke_tokens(sandbox: Sandbox) -> None:
    sandbox.http.delete(sandbox.root("sqlrace") + "/__sandbox/sqlrace/tokens").raise_for_status()


def sessions_page(gateway: Gateway, name: str, **variables: Any) -> dict[str, Any]:
    result = gateway.query(SESSIONS, {"name": name, **variables})
    assert "errors" not in result, result
    page: dict[str, Any] = result["data"]["connection"]["sessions"]
    return page


def requests_to(sandbox: Sandbox, path: str) -> int:
    return int(sandbox.stats("sqlrace")["by_path"].get(path, 0))


def error_of(result: dict[str, Any], field: str) -> dict[str, Any]:
    assert result["data"][field] is None
    (error,) = result["errors"]
    assert error["path"][0] == field
    extensions: dict[str, Any] = error["extensions"]
    return extensions


# --- connections and tokens -------------------------------------------------------------------


def test_connections_without_infrastructure(gateway: Gateway) -> None:
    result = gateway.query(
        "{ connections { name identifier isSqlite databaseName serverName rootPath } }"
    )
    rows = {c["name"]: c for c in result["data"]["connections"]}
    assert list(rows) == ["Season2024", "Simulator", "Live Session Cache"]
    assert rows["Live Session Cache"]["isSqlite"] is True
    assert rows["Season2024"]["databaseName"] == "SQLRACE2024"
    # A SQLite connection's database name is its file path: only the file's name is shown.
    assert rows["Live Session Cache"]["databaseName"] == "LiveSessionCache.ssn2"
    assert all(c["serverName"] is None and c["rootPath"] is None for c in rows.values())


def test_infrastructure_when_configured(make_gateway: Any) -> None:
    gateway = make_gateway(sqlrace_expose_infrastructure=True)
    result = gateway.query('{ connection(name: "Season2024") { serverName rootPath } }')
    assert result["data"]["connection"] == {
        "serverName": "SQLRACE-DB01\\SQLEXPRESS",
        "rootPath": "D:\\SQLRace_Filestream",
    }
    cache = gateway.query('{ connection(name: "Live Session Cache") { databaseName } }')
    assert cache["data"]["connection"]["databaseName"].endswith("\\SQL Race\\LiveSessionCache.ssn2")


@pytest.mark.parametrize("position", [10**7, 2**62, 10_001 * 500])
def test_a_forged_cursor_is_bad_input_and_never_sent(
    gateway: Gateway, sandbox: Sandbox, position: int
) -> None:
    cursor = encode_cursor(position)
    result = gateway.query(SESSIONS, {"name": "Season2024", "first": 5, "after": cursor})
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "after"
    assert "SESSIONGRAPH" not in error["message"]  # no operator advice for a client's mistake
    assert not any("/sessions" in p for p in sandbox.stats("sqlrace")["by_method_path"])


def test_one_token_serves_many_requests(make_gateway: Any, sandbox: Sandbox) -> None:
    # A fresh gateway: the shared one may hold a token from before the sandbox reset.
    gateway = make_gateway()
    gateway.query(CONNECTIONS)
    gateway.query("{ connections { sessions(first: 3) { nodes { laps { number } } } } }")
    assert tokens_issued(sandbox) == 1
    assert sandbox.stats("sqlrace")["by_path"]["/token"] == 1


def test_a_token_near_expiry_is_renewed(make_gateway: Any, sandbox: Sandbox) -> None:
    # The sandbox's tokens live a day; renewing a day early makes every token "near expiry".
    gateway = make_gateway(sqlrace_token_renew_seconds=86_400)
    gateway.query(CONNECTIONS)
    gateway.query(CONNECTIONS)
    assert tokens_issued(sandbox) == 2


def test_a_refused_token_is_replaced_once(make_gateway: Any, sandbox: Sandbox) -> None:
    # A fresh gateway: the shared one may hold a token from before the sandbox reset.
    gateway = make_gateway()
    gateway.query(CONNECTIONS)
    revoke_tokens(sandbox)
    result = gateway.query(CONNECTIONS)
    assert "errors" not in result
    assert tokens_issued(sandbox) == 2
    # The first read, the refused one, and its single retry.
    assert sandbox.stats("sqlrace")["by_path"]["/api/connections"] == 3


def test_concurrent_reads_share_one_renewal(make_gateway: Any, sandbox: Sandbox) -> None:
    # A fresh gateway: the shared one may hold a token from before the sandbox reset.
    gateway = make_gateway()
    gateway.query(CONNECTIONS)
    revoke_tokens(sandbox)
    result = gateway.query("{ connections { sessions(first: 5) { nodes { laps { number } } } } }")
    assert "errors" not in result
    assert tokens_issued(sandbox) == 2


def test_wrong_credentials_are_an_auth_error_without_the_secret(make_gateway: Any) -> None:
    gateway = make_gateway(sqlrace_password="not-the-Pa55word")
    response = gateway.post({"query": CONNECTIONS})
    assert "not-the-Pa55word" not in response.text
    extensions = error_of(response.json(), "connections")
    assert extensions["code"] == "UPSTREAM_AUTH_FAILED"
    assert extensions["upstream"] == "sqlrace"


def test_the_v1_base_path(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(sqlrace_api_path="api/v1")
    result = gateway.query('{ connection(name: "Simulator") { friendlyName identifier } }')
    # The v1 dialect has no FriendlyName.
    assert result["data"]["connection"] == {"friendlyName": None, "identifier": "Simulator"}
    assert "/api/v1/connections/Simulator" in sandbox.stats("sqlrace")["by_path"]


# --- sessions -------------------------------------------------------------------------------


def test_paging_across_upstream_pages(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(sqlrace_page_size=20)
    first = sessions_page(gateway, "Season2024", first=45)
    assert len(first["edges"]) == 45
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    # Positions 0-45 (one beyond, for hasNextPage) lie on pages 0-2.
    assert sandbox.stats("sqlrace")["by_path"]["/api/connections/Season2024/sessions"] == 3
    rest = sessions_page(gateway, "Season2024", first=500, after=first["pageInfo"]["endCursor"])
    assert len(rest["edges"]) == 114 - 45
    assert rest["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "endCursor": rest["edges"][-1]["cursor"],
    }
    keys = [e["node"]["key"] for e in first["edges"] + rest["edges"]]
    assert len(set(keys)) == 114


def test_total_count_reads_to_the_short_page(gateway: Gateway, sandbox: Sandbox) -> None:
    result = gateway.query(
        '{ connection(name: "Season2024") { sessions(first: 1) { totalCount } } }'
    )
    assert result["data"]["connection"]["sessions"]["totalCount"] == 114
    # 50 + 50 + 14 with the default page size.
    assert sandbox.stats("sqlrace")["by_path"]["/api/connections/Season2024/sessions"] == 3


def test_both_key_and_state_shapes(make_gateway: Any) -> None:
    gateway = make_gateway(sqlrace_state_names=STATE_NAMES)
    season = sessions_page(gateway, "Season2024", first=3)["edges"]  # {"value": guid}, int State
    sim = sessions_page(gateway, "Simulator", first=3)["edges"]  # "guid", State name
    for edge in season + sim:
        assert len(edge["node"]["key"]) == 36
    assert [e["node"]["state"] for e in season] == ["Historical"] * 3
    assert [e["node"]["stateCode"] for e in season] == [2] * 3
    assert [e["node"]["state"] for e in sim] == ["Historical"] * 3
    assert [e["node"]["stateCode"] for e in sim] == [None] * 3


def test_unmapped_integer_states_stay_raw(gateway: Gateway) -> None:
    node = sessions_page(gateway, "Live Session Cache", first=1)["edges"][0]["node"]
    assert node["state"] is None
    assert isinstance(node["stateCode"], int)


def test_filters_apply_across_pages(gateway: Gateway) -> None:
    page = sessions_page(gateway, "Simulator", first=50, filter={"state": {"eq": "Indexed"}})
    assert page["edges"]
    assert {e["node"]["state"] for e in page["edges"]} == {"Indexed"}


def test_a_session_past_midnight_without_time_zone(gateway: Gateway) -> None:
    window = {"gte": "2024-06-20T22:00:00Z", "lt": "2024-06-21T00:00:00Z"}
    page = sessions_page(gateway, "Simulator", filter={"timeOfRecording": window})
    (edge,) = page["edges"]
    node = edge["node"]
    assert node["timeZone"] is None  # read in the default zone, UTC
    assert node["timeOfRecording"].startswith("2024-06-20T23:20")
    assert node["endsAt"].startswith("2024-06-21T")


def test_one_session_found_by_paging(gateway: Gateway, sandbox: Sandbox) -> None:
    last = sessions_page(gateway, "Season2024", first=500)["edges"][-1]["node"]
    before = requests_to(sandbox, "/api/connections/Season2024/sessions")
    result = gateway.query(SESSION, {"connection": "Season2024", "key": last["key"].upper()})
    assert result["data"]["sqlRaceSession"]["key"] == last["key"]
    assert result["data"]["sqlRaceSession"]["source"] == "SQLRACE"
    assert requests_to(sandbox, "/api/connections/Season2024/sessions") - before == 3


@pytest.fixture
def single_route_root() -> Iterator[str]:
    """An extra emulator that serves GET .../sessions/{key}, which the reference lacks."""
    thread = LoopThread("sqlrace-single-route")

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(create_app(single_session_route=True), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    runner, port = thread.run(start)
    yield f"http://127.0.0.1:{port}"
    thread.run(runner.cleanup)
    thread.close()


def test_one_session_by_its_own_route_when_configured(
    make_gateway: Any, single_route_root: str
) -> None:
    gateway = make_gateway(sqlrace_url=single_route_root, sqlrace_single_session_route=True)
    key = sessions_page(gateway, "Season2024", first=500)["edges"][-1]["node"]["key"]
    result = gateway.query(SESSION, {"connection": "Season2024", "key": key})
    assert result["data"]["sqlRaceSession"]["key"] == key
    missing = gateway.query(SESSION, {"connection": "Season2024", "key": "0" * 36})
    assert error_of(missing, "sqlRaceSession")["code"] == "NOT_FOUND"
    by_path = httpx.get(single_route_root + "/__sandbox/stats").json()["by_path"]
    assert by_path["/api/connections/Season2024/sessions"] == 3  # the listing above only
    assert by_path[f"/api/connections/Season2024/sessions/{key}"] == 1


def test_session_details_laps_and_parameters(gateway: Gateway) -> None:
    result = gateway.query(
        """{ connection(name: "Season2024") { sessions(first: 1) { nodes {
          lapsCount startsAt connection { name }
          details { name value } laps { number name startsAt lapSeconds }
          parameters { identifier units frequency } } } } }"""
    )
    (node,) = result["data"]["connection"]["sessions"]["nodes"]
    assert node["connection"] == {"name": "Season2024"}
    assert "Driver" in {d["name"] for d in node["details"]}
    assert len(node["laps"]) == node["lapsCount"]
    assert node["laps"][0]["startsAt"] == node["startsAt"]
    assert all(lap["lapSeconds"] > 60 for lap in node["laps"])
    assert {"identifier": "vCar:Chassis", "units": "km/h", "frequency": 200.0} in node["parameters"]


def test_unknown_connection_and_session_are_not_found(gateway: Gateway) -> None:
    missing = gateway.query('{ connection(name: "Nope") { name } }')
    assert error_of(missing, "connection")["code"] == "NOT_FOUND"
    result = gateway.query(SESSION, {"connection": "Season2024", "key": "0" * 36})
    assert error_of(result, "sqlRaceSession")["code"] == "NOT_FOUND"
    result = gateway.query(SESSION, {"connection": "Nope", "key": "0" * 36})
    assert error_of(result, "sqlRaceSession")["code"] == "NOT_FOUND"


INJECTIONS = [
    "Season2024/sessions",
    "../api/connections",
    "..",
    ".",
    "Season2024?page=1",
    "Season2024#",
    "Season2024%2Fsessions",
    "100%",
    "Simulator/../Season2024",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_names_never_reach_another_route(gateway: Gateway, sandbox: Sandbox, name: str) -> None:
    result = gateway.query("query($n: String!) { connection(name: $n) { name } }", {"n": name})
    assert error_of(result, "connection")["code"] == "NOT_FOUND"
    result = gateway.query(SESSION, {"connection": name, "key": "k/../../x"})
    assert error_of(result, "sqlRaceSession")["code"] == "NOT_FOUND"
    # The emulator decodes each raw segment once: the whole name arrived as one segment.
    paths = set(sandbox.stats("sqlrace")["by_path"]) - {"/token"}
    assert paths == {f"/api/connections/{name}", f"/api/connections/{name}/sessions"}


# --- loaders --------------------------------------------------------------------------------


def test_one_sessions_request_per_connection_and_capped_session_reads(
    make_gateway: Any, sandbox: Sandbox
) -> None:
    gateway = make_gateway(sqlrace_concurrency=4)
    sandbox.faults("sqlrace", latency_ms=20)
    result = gateway.query("{ connections { sessions(first: 20) { nodes { laps { number } } } } }")
    assert "errors" not in result
    nodes = [n for c in result["data"]["connections"] for n in c["sessions"]["nodes"]]
    assert len(nodes) == 60
    by_path = sandbox.stats("sqlrace")["by_path"]
    for name in ("Season2024", "Simulator", "Live Session Cache"):
        assert by_path[f"/api/connections/{name}/sessions"] == 1
    laps = {path: n for path, n in by_path.items() if path.endswith("/laps")}
    assert len(laps) == 60
    assert set(laps.values()) == {1}
    assert sum(by_path.values()) == 1 + 1 + 3 + 60  # token, connections, sessions, laps
    provider = gateway.app.state.providers.sqlrace
    assert provider.peak_in_flight == 4


def test_the_same_session_is_read_once(gateway: Gateway, sandbox: Sandbox) -> None:
    page = sessions_page(gateway, "Season2024", first=1)
    key = page["edges"][0]["node"]["key"]
    before = requests_to(sandbox, "/api/connections/Season2024/sessions")
    result = gateway.query(
        """query($k: String!) {
          a: sqlRaceSession(connection: "Season2024", key: $k) { laps { number } }
          b: sqlRaceSession(connection: "Season2024", key: $k) { laps { name } details { name } }
          connection(name: "Season2024") { sessions(first: 1) { nodes { laps { number } } } }
        }""",
        {"k": key},
    )
    assert "errors" not in result
    assert requests_to(sandbox, f"/api/connections/Season2024/sessions/{key}/laps") == 1
    assert requests_to(sandbox, "/api/connections/Season2024/sessions") - before == 1


# --- failures -------------------------------------------------------------------------------


def test_sqlrace_down_leaves_openf1_answering(make_gateway: Any) -> None:
    gateway = make_gateway(sqlrace_url="http://127.0.0.1:9", retry_attempts=0)
    result = gateway.query("{ meeting(key: 1216) { meetingName } connections { name } }")
    assert result["data"]["meeting"] == {"meetingName": "Belgian Grand Prix"}
    extensions = error_of(result, "connections")
    assert extensions["code"] == "UPSTREAM_UNAVAILABLE"
    assert extensions["upstream"] == "sqlrace"


def test_sqlrace_5xx_is_coded_on_its_fields_only(make_gateway: Any, sandbox: Sandbox) -> None:
    gateway = make_gateway(retry_attempts=1)
    sandbox.faults("sqlrace", error_rate=1.0, error_status=503)
    result = gateway.query("{ meeting(key: 1216) { meetingName } connections { name } }")
    assert result["data"]["meeting"] == {"meetingName": "Belgian Grand Prix"}
    (error,) = result["errors"]
    assert error["path"] == ["connections"]
    assert error["extensions"] == {
        "code": "UPSTREAM_UNAVAILABLE",
        "upstream": "sqlrace",
        "status": 503,
    }


@pytest.mark.parametrize(
    "overrides", [{"sqlrace_url": None}, {"sqlrace_username": None}, {"sqlrace_password": None}]
)
def test_not_configured(make_gateway: Any, sandbox: Sandbox, overrides: dict[str, Any]) -> None:
    gateway = make_gateway(**overrides)
    result = gateway.query(
        '{ connections { name } sqlRaceSession(connection: "x", key: "y") { key } }'
    )
    assert result["data"] == {"connections": None, "sqlRaceSession": None}
    codes = {e["extensions"]["code"] for e in result["errors"]}
    assert codes == {"UPSTREAM_NOT_CONFIGURED"}
    assert sandbox.requests("sqlrace") == 0
