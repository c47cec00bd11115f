"""`python -m sessiongraph.sandbox [--host H] [--json]`: run only the emulators."""

import argparse
import asyncio

from ._runner import serve_forever


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sessiongraph.sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--json", action="store_true", help="print one JSON line of base URLs")
    parser.add_argument("--stop-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve_forever(args.host, args.json, args.stop_on_stdin_eof))


if __name__ == "__main__":
    main()
