"""A local stand-in for the GitHub REST API's `GET /repos/{owner}/{repo}`,
used by the tests of guardway's repository-visibility look-up (point
`GITHUB_API_URL` at it). Python standard library only.

    python mock_github_api.py --mode public --log requests.jsonl

Modes: `public`, `private`, `internal` (200 with that `visibility` and the
matching `private` flag), `status:<code>` (that status, GitHub's error
body), `hang` (never answers). Every other path is 404. Each request is
appended to `--log` as one JSON line (method, path, authorization, accept,
user_agent) before it is answered. Once listening, the server prints
`PORT <n>` on stdout.
"""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    lock = threading.Lock()
    forever = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *values):  # noqa: A002 - stdlib signature
            pass

        def record(self) -> None:
            entry = {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "accept": self.headers.get("Accept"),
                "user_agent": self.headers.get("User-Agent"),
            }
            with lock, open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self.record()
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 3 or parts[0] != "repos":
                self.answer(404, {"message": "Not Found"})
                return
            mode = args.mode
            if mode == "hang":
                forever.wait()
                return
            if mode.startswith("status:"):
                status = int(mode.split(":", 1)[1])
                self.answer(status, {"message": f"mock status {status}",
                                     "documentation_url": "https://docs.github.com/rest"})
                return
            self.answer(200, {
                "full_name": f"{parts[1]}/{parts[2]}",
                "name": parts[2],
                "owner": {"login": parts[1]},
                "private": mode != "public",
                "visibility": mode,
            })

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
