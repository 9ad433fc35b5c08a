"""``python -m qbo_sandbox --port N``: serve the sandbox until interrupted.

``main(argv)`` is also the ``qbo-sandbox`` console script.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from werkzeug.serving import make_server

from qbo_sandbox.app import create_app, get_sandbox
from qbo_sandbox.clock import Clock
from qbo_sandbox.control import MIN_TOKEN_LENGTH, TOKEN_ENV, TOKEN_HEADER, is_loopback


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qbo_sandbox", description="Local QuickBooks Online API emulator")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="added processing time per /v3 request (default 0)")
    parser.add_argument("--clock-speed", type=float, default=1.0,
                        help="sandbox time runs this many times faster than real time")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--control-token", default=os.environ.get(TOKEN_ENV) or None,
                        help=f"require this token in {TOKEN_HEADER} on /_sandbox/ (default ${TOKEN_ENV}); "
                             "needed to bind a non-loopback address")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clock_speed <= 0:
        print("--clock-speed must be positive", file=sys.stderr)
        return 2
    if args.control_token is not None and len(args.control_token) < MIN_TOKEN_LENGTH:
        print(f"--control-token must be at least {MIN_TOKEN_LENGTH} characters", file=sys.stderr)
        return 2
    if args.control_token is None and not is_loopback(args.host):
        print(f"refusing to bind {args.host}: the control API hands out secrets and tokens. Bind 127.0.0.1, "
              f"or set --control-token (or ${TOKEN_ENV})", file=sys.stderr)
        return 2
    app = create_app(Clock(speed=args.clock_speed), latency_ms=args.latency_ms,
                     webhook_autostart=True, control_token=args.control_token)
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, app, threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]
    url = f"http://{args.host}:{server.server_port}"
    print(f"qbo_sandbox listening on {url}", flush=True)
    print(f"  discovery: {url}/.well-known/openid_configuration", flush=True)
    print(f"  REST base: {url}/v3   control: {url}/_sandbox/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        get_sandbox(app).webhooks.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
