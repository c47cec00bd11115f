"""The offline playground: page and assets over HTTP, and GraphiQL in headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from playwright.sync_api import Page, expect

from sessiongraph.playground.examples import EXAMPLES, default_document
from tests._servers import Gateway, Sandbox

PAGE = {"Accept": "text/html"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def asset_urls(gateway: Gateway, html: str) -> list[str]:
    page_url = gateway.url + "/graphql"
    return [urljoin(page_url, ref) for ref in re.findall(r'(?:src|href)="([^"]+)"', html)]


def test_page_allows_only_its_own_origin(gateway: Gateway) -> None:
    response = gateway.http.get("/graphql", headers=PAGE)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "http" not in policy
    assert not re.search(r"https?:|//[a-z]", response.text, re.IGNORECASE)
    assert "<script>" not in response.text  # the policy allows no inline script


def test_every_asset_is_served_and_cacheable(gateway: Gateway) -> None:
    html = gateway.http.get("/graphql", headers=PAGE).text
    urls = [url for url in asset_urls(gateway, html) if not url.startswith("data:")]
    names = {Path(urlsplit(url).path).name for url in urls}
    assert {"playground.js", "playground.css"} <= names
    assert any(name.startswith("graphiql-plugin-explorer-") for name in names)

    for url in urls:
        response = gateway.http.get(url)
        assert response.status_code == 200, url
        # Either JavaScript type, as the host's /etc/mime.types says; browsers run both.
        kinds = ("text/css",) if ".css" in url else ("text/javascript", "application/javascript")
        assert response.headers["content-type"].startswith(kinds), url
        assert "immutable" in response.headers["cache-control"]
        assert response.content
    assert gateway.http.get("/graphql/static/missing.js").status_code == 404


def test_graphiql_switch_turns_page_and_assets_off(
    gateway: Gateway, make_gateway: Callable[..., Gateway]
) -> None:
    html = gateway.http.get("/graphql", headers=PAGE).text
    scripts = [urlsplit(url).path for url in asset_urls(gateway, html) if ".js" in url]
    off = make_gateway(graphiql=False)

    assert scripts
    assert off.http.get("/graphql", headers=PAGE).status_code == 404
    for path in scripts:
        assert off.http.get(path).status_code == 404


def test_examples_run_and_are_in_the_readme(gateway: Gateway) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    document = default_document()
    for example in EXAMPLES:
        assert example.query in document
        assert f"```graphql\n{example.query}\n```" in readme, example.query
        result = gateway.query(example.query)
        assert "errors" not in result, result
        assert all(value is not None for value in result["data"].values()), result


def test_graphiql_runs_a_query_offline(gateway: Gateway, browser: Page) -> None:
    page = browser
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(gateway.url + "/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    run = page.locator(".graphiql-execute-button")
    expect(editor).to_contain_text("query Season", timeout=30_000)
    # The default tab holds several operations, so the run button asks which one.
    expect(run).to_have_attribute("aria-haspopup", "menu")

    # Typed as one input event: keystrokes would trip the editor's bracket closing.
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text("{ meeting(key: 1216) { meetingName } }")
    # GraphiQL reparses after a pause; until then the button still offers the old operations.
    expect(run).not_to_have_attribute("aria-haspopup", "menu")
    run.click()
    expect(page.locator(".graphiql-response")).to_contain_text("Belgian Grand Prix", timeout=30_000)

    page.get_by_role("button", name="Show GraphiQL Explorer").click()
    expect(page.locator(".graphiql-explorer-root")).to_contain_text("meetings", timeout=30_000)

    hosts = {urlsplit(url).hostname for url in requested if urlsplit(url).scheme != "data"}
    assert hosts <= LOOPBACK, requested
    assert not problems, problems


def test_a_query_link_opens_in_the_editor_unrun(
    gateway: Gateway, sandbox: Sandbox, browser: Page
) -> None:
    query = "query Linked { meeting(key: 1216) { circuitShortName } }"
    sandbox.reset("openf1")
    browser.goto(gateway.url + "/graphql?" + urlencode({"query": query}))
    editor = browser.locator(".graphiql-query-editor .CodeMirror")
    expect(editor).to_contain_text("query Linked", timeout=30_000)
    expect(browser.locator(".graphiql-response")).not_to_contain_text("Spa")
    assert sandbox.requests("openf1") == 0
    browser.locator(".graphiql-execute-button").click()
    expect(browser.locator(".graphiql-response")).to_contain_text("Spa", timeout=30_000)


def test_graphiql_runs_a_subscription_over_the_websocket(
    make_gateway: Any, sandbox: Sandbox, browser: Page
) -> None:
    replay = {"session_key": 9839, "speed": 60, "from_seconds": 0}
    httpx.post(sandbox.root("openf1") + "/__sandbox/replay", json=replay).raise_for_status()
    gateway = make_gateway(
        openf1_username="sandbox",
        openf1_password="sandbox",
        live_poll_seconds=0.3,
        openf1_rate_per_minute=0,
    )
    sockets: list[str] = []
    browser.on("websocket", lambda socket: sockets.append(socket.url))
    query = "subscription Live { raceControl(latest: true) { date message } }"
    browser.goto(gateway.url + "/graphql?" + urlencode({"query": query}))
    editor = browser.locator(".graphiql-query-editor .CodeMirror")
    expect(editor).to_contain_text("subscription Live", timeout=30_000)
    browser.locator(".graphiql-execute-button").click()
    expect(browser.locator(".graphiql-response")).to_contain_text("raceControl", timeout=30_000)
    assert sockets == [gateway.url.replace("http://", "ws://") + "/graphql"]
