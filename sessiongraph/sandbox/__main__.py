"""`python -m sessiongraph.sandbox [--host H] [--json] [--replay KEY[@SPEED]]`: run only the
emulators (and OpenF1's MQTT broker); with `--replay`, OpenF1 plays that session back as live."""

import argparse
import asyncio

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
    parser.add_argument("--stop-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        asyncio.run(serve_forever(args.host, args.json, args.stop_on_stdin_eof, args.replay))
    except ValueError as exc:  # a replay the emulator refused, e.g. an unknown session
        parser.error(str(exc))


if __name__ == "__main__":
    main()
