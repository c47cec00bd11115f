"""The offline playground: GraphiQL with the explorer plugin, all its assets served from here."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from string import Template

from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from .examples import default_document

__all__ = ["ASSETS_PATH", "assets_mount", "playground_response"]

ASSETS_PATH = "/graphql/static"
_HERE = Path(__file__).parent
_STATIC = _HERE / "static"

# Only this origin: no CDN, no inline script. GraphiQL's components set inline styles and its
# CSS inlines its fonts as data: URLs.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)


class _ImmutableAssets(StaticFiles):
    """Every asset URL carries its content hash, so browsers may keep a copy for a year."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def assets_mount() -> Mount:
    return Mount(ASSETS_PATH, app=_ImmutableAssets(directory=_STATIC), name="playground-assets")


def _asset_url(name: str) -> str:
    digest = hashlib.sha256((_STATIC / name).read_bytes()).hexdigest()[:12]
    # Relative to the page at `.../graphql`, so a proxy's path prefix carries over.
    return f"{ASSETS_PATH.lstrip('/')}/{name}?v={digest}"


@functools.cache
def _page() -> str:
    manifest = json.loads((_STATIC / "manifest.json").read_text())
    styles = [*manifest["styles"], "playground.css"]
    scripts = [*manifest["scripts"], "playground.js"]
    config = {"tabs": [{"query": default_document()}]}
    return Template((_HERE / "page.html").read_text()).substitute(
        styles="\n    ".join(f'<link rel="stylesheet" href="{_asset_url(s)}">' for s in styles),
        scripts="\n    ".join(f'<script src="{_asset_url(s)}"></script>' for s in scripts),
        # `<` escaped so no string in the examples can close the script element.
        config=json.dumps(config).replace("<", "\\u003c"),
    )


def playground_response() -> HTMLResponse:
    return HTMLResponse(
        _page(),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
