"""The demo's HTTP calls, with the standard library only (a fresh machine may have no curl).

    demo_http.py METHOD URL [--token TOKEN] [--data JSON] [--field a.b] [--headers]
Prints the JSON answer (or one field of it, or the response headers) and exits 1 on a non-2xx status.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--data")
    parser.add_argument("--field", help="print only this dotted field of the JSON answer")
    parser.add_argument("--headers", action="store_true", help="print the status and X- headers instead")
    args = parser.parse_args()
    headers = {"Content-Type": "application/json"} if args.data else {}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    request = urllib.request.Request(
        args.url, data=args.data.encode() if args.data else None, method=args.method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, body, answer_headers = error.code, error.read(), error.headers
    if args.headers:
        print(f"HTTP {status}")
        for name, value in answer_headers.items():
            if name.lower().startswith(("x-", "www-authenticate")):
                print(f"{name}: {value}")
    else:
        value = json.loads(body) if body else {}
        for part in (args.field or "").split(".") if args.field else []:
            value = value[part]
        print(value if isinstance(value, str) else json.dumps(value, indent=2))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
