"""The `sessiongraph` command: `serve`, `schema` and `sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["main"]

ENV_PREFIX = "SESSIONGRAPH_"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessiongraph",
        description="One GraphQL API over OpenF1, Guidebook and McLaren SQL Race sessions.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--sandbox", action="store_true", help="also run the three emulators and use them"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--replay",
        type=_replay,
        metavar="SESSION_KEY[@SPEED]",
        help="with --sandbox: OpenF1 plays that session back as if live, SPEED times real "
        "time (default 1), from its start",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get(ENV_PREFIX + "WORKERS", "1")),
        help="worker processes (default: $SESSIONGRAPH_WORKERS or 1)",
    )
    schema = commands.add_parser(
        "schema", help="print the client-facing GraphQL SDL (the checked-in schema.graphql)"
    )
    schema.add_argument(
        "--federation",
        action="store_true",
        help="print the federation subgraph SDL instead (the checked-in subgraph.graphql)",
    )
    sandbox = commands.add_parser("sandbox", help="run only the emulators")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--replay", type=_replay, metavar="SESSION_KEY[@SPEED]")
    return parser


def _replay(text: str) -> str:
    from .sandbox._runner import parse_replay

    try:
        parse_replay(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


@contextlib.contextmanager
def _emulators(
    host: str, replay: str | None, webhook: tuple[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """Runs the emulators in a child process; closing its stdin stops it, even if we crash.

    `webhook`: (URL, token) Guidebook's emulator sends its webhooks to."""
    env = dict(os.environ)
    hook_args: tuple[str, ...] = ()
    if webhook is not None:
        hook_args = ("--guidebook-webhook-url", webhook[0])
        env["SANDBOX_GUIDEBOOK_WEBHOOK_TOKEN"] = webhook[1]
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
        [
            sys.executable,
            "-m",
            "sessiongraph.sandbox",
            "--host",
            host,
            "--json",
            "--stop-on-stdin-eof",
            *(("--replay", replay) if replay else ()),
            *hook_args,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise SystemExit("sessiongraph: the sandbox emulators failed to start")
        yield json.loads(line)["env"]
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


def _reachable(host: str) -> str:
    """How a local process reaches a server listening on `host`."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1" if host != "::" else "[::1]"
    return f"[{host}]" if ":" in host else host


def _checked_settings() -> Settings:
    """The environment's settings, or an exit naming what is wrong (never a traceback, and
    never a server that fails at its first request)."""
    from pydantic import ValidationError

    from .config import Settings
    from .persisted import TrustedDocuments, TrustedDocumentsError

    try:
        settings = Settings()
        # Checked once here, before uvicorn starts workers that would each fail on their own.
        if settings.persisted_documents_file is not None:
            TrustedDocuments.load(settings.persisted_documents_file)
        elif settings.persisted_documents_only:
            raise TrustedDocumentsError("PERSISTED_DOCUMENTS_ONLY needs PERSISTED_DOCUMENTS_FILE")
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"sessiongraph: bad configuration: {problems}") from None
    except TrustedDocumentsError as exc:
        raise SystemExit(f"sessiongraph: {ENV_PREFIX}PERSISTED_DOCUMENTS_FILE: {exc}") from None
    return settings


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from .logs import configure_logging
    from .server import GuardedHttpToolsProtocol

    if args.workers < 1:
        raise SystemExit("sessiongraph: --workers must be at least 1")
    if args.replay and not args.sandbox:
        raise SystemExit("sessiongraph: --replay needs --sandbox (it replays in the emulator)")
    with contextlib.ExitStack() as stack:
        if args.sandbox:
            from .sandbox.guidebook_webhooks import SANDBOX_WEBHOOK_TOKEN

            # Builder's edits in the emulator reach this gateway's webhook receiver at once.
            hook_token = os.environ.get(ENV_PREFIX + "GUIDEBOOK_WEBHOOK_TOKEN") or (
                SANDBOX_WEBHOOK_TOKEN
            )
            os.environ[ENV_PREFIX + "GUIDEBOOK_WEBHOOK_TOKEN"] = hook_token
            hook_url = f"http://{_reachable(args.host)}:{args.port}/webhooks/guidebook"
            # Emulators stay on loopback whatever --host says: they are not for the network.
            env = stack.enter_context(_emulators("127.0.0.1", args.replay, (hook_url, hook_token)))
            for key, value in env.items():
                os.environ[ENV_PREFIX + key] = value
            os.environ[ENV_PREFIX + "SANDBOX"] = "true"
            # The user's tokens when set (a script or CI job knows its own); else a fresh one.
            token = None
            if not os.environ.get(ENV_PREFIX + "API_TOKEN_HASHES"):
                token = secrets.token_urlsafe(24)
                digest = hashlib.sha256(token.encode()).hexdigest()
                os.environ[ENV_PREFIX + "API_TOKEN_HASHES"] = digest
            print("sessiongraph sandbox: emulators at", file=sys.stderr)
            for key, value in env.items():
                if key.endswith("_URL"):
                    print(f"  {key[:-4].lower():<10} {value}", file=sys.stderr)
            if token is None:
                print(f"  mutation tokens: those of {ENV_PREFIX}API_TOKEN_HASHES", file=sys.stderr)
            else:
                print(f"  mutation token (Authorization: Bearer …): {token}", file=sys.stderr)
        if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Workers share one port, so /metrics on any of them must report all of them.
            metrics_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        settings = _checked_settings()  # before any worker starts, with a clear message
        configure_logging(settings.log_level, settings.log_format)
        print(f"sessiongraph: GraphQL at http://{args.host}:{args.port}/graphql", file=sys.stderr)
        uvicorn.run(
            "sessiongraph.app:create_served_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop" if sys.platform != "win32" else "asyncio",
            http=GuardedHttpToolsProtocol,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            server_header=False,
            # An event goes to every subscriber as its own small message: compressing each
            # costs more CPU than the bytes it saves (and a fan-out of 1,000 pays it 1,000 times).
            ws_per_message_deflate=False,
        )


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        from .schema.build import build_schema
        from .schema.sdl import client_sdl, subgraph_sdl

        printer = subgraph_sdl if args.federation else client_sdl
        sys.stdout.write(printer(build_schema()) + "\n")
    elif args.command == "sandbox":
        from .sandbox._runner import parse_replay, serve_forever

        replay = parse_replay(args.replay) if args.replay else None
        asyncio.run(serve_forever(args.host, as_json=False, replay=replay))
    else:
        _serve(args)


if __name__ == "__main__":
    main()
