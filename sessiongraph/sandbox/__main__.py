"""`python -m sessiongraph.sandbox [--host H] [--json] [--replay KEY[@SPEED]] [...]`: run only
the emulators (and OpenF1's MQTT broker); with `--replay`, OpenF1 plays that session back live."""

import argparse
import asyncio
import os
from typing import Any

from ._runner import parse_replay, serve_forever


def _replay(text: str) -> tuple[int, float]:
    try:
        return parse_replay(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sessiongraph.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--json", action="store_true", help="print one JSON line of base URLs")
    parser.add_argument(
        "--replay",
        type=_replay,
        metavar="SESSION_KEY[@SPEED]",
        help="play an OpenF1 session back as if live, SPEED times real time (default 1)",
    )
    parser.add_argument(
        "--guidebook-webhook-url",
        metavar="URL",
        help="where Guidebook's emulator POSTs its webhooks (the token: "
        "$SANDBOX_GUIDEBOOK_WEBHOOK_TOKEN, else the sandbox's own)",
    )
    parser.add_argument("--stop-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    options: dict[str, dict[str, Any]] = {}
    if args.guidebook_webhook_url:
        # The token comes from the environment, not argv, which any local user can read.
        webhook: dict[str, Any] = {"webhook_url": args.guidebook_webhook_url}
        if os.environ.get("SANDBOX_GUIDEBOOK_WEBHOOK_TOKEN"):
            webhook["webhook_token"] = os.environ["SANDBOX_GUIDEBOOK_WEBHOOK_TOKEN"]
        options["guidebook"] = webhook
    try:
        asyncio.run(
            serve_forever(args.host, args.json, args.stop_on_stdin_eof, args.replay, options)
        )
    except ValueError as exc:  # a replay the emulator refused, e.g. an unknown session
        parser.error(str(exc))


if __name__ == "__main__":
    main()
