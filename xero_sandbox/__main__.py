"""``python -m xero_sandbox --port N`` (or ``xero-sandbox``): serve the sandbox until interrupted.

Binding anything but a loopback address needs ``--control-token`` (or ``XERO_SANDBOX_TOKEN``):
the control API can reset everything and mint tokens, so it must not be open on a network.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence

from werkzeug.serving import make_server

from xero_sandbox.app import create_app, get_sandbox
from xero_sandbox.clock import Clock


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="xero_sandbox", description="Local Xero API emulator")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8766, help="port (default 8766; 0 = any free)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="added processing time per Accounting API call")
    parser.add_argument("--clock-speed", type=float, default=1.0,
                        help="sandbox time runs this many times faster than real time")
    parser.add_argument("--control-token", default=os.environ.get("XERO_SANDBOX_TOKEN"),
                        help="require this X-Sandbox-Token on /_sandbox/ (needed off loopback)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clock_speed <= 0:
        print("--clock-speed must be positive", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and not args.control_token:
        print(f"refusing to bind {args.host} without --control-token: the control API would be "
              "open to the network", file=sys.stderr)
        return 2
    app = create_app(Clock(speed=args.clock_speed), latency_ms=args.latency_ms,
                     control_token=args.control_token, webhook_autostart=True)
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(args.host, args.port, app, threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]
    url = f"http://{args.host}:{server.server_port}"
    print(f"xero_sandbox listening on {url}", flush=True)
    print(f"  token: {url}/connect/token   API: {url}/api.xro/2.0   control: {url}/_sandbox/",
          flush=True)
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
