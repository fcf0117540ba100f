"""A real `git push` over HTTP, authenticated by nothing but agentctl's git
credential helper: git's own `git http-backend` (CGI) behind a check of the
token against the GitHub emulator (the token must read the repository, as
GitHub's git server checks it); after `agentctl kill` the push is refused."""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from github_helpers import ORG, GitHubWorld, contract_for, token_headers

from agentctl.cli.app import run

GRANT = {"repositories": [f"{ORG}/api"], "scopes": ["repo:write"]}


def git_server(world: GitHubWorld, root: Path) -> Iterator[str]:
    backend = (
        Path(
            subprocess.run(
                ["git", "--exec-path"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        / "git-http-backend"
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            auth = self.headers.get("Authorization", "")
            token = ""
            if auth.startswith("Basic "):
                token = base64.b64decode(auth[6:]).decode().partition(":")[2]
            if not token or (
                world.http.get(f"/repos/{ORG}/api", headers=token_headers(token)).status_code != 200
            ):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": "x-access-token",  # enables receive-pack
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
            }
            done = subprocess.run(
                [str(backend)], input=body, env=env, capture_output=True, check=False
            )
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def served(github_world: GitHubWorld, tmp_path: Path) -> Iterator[tuple[GitHubWorld, str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "--bare", str(root / "api.git")], check=True)
    yield from ((github_world, url, root) for url in git_server(github_world, root))


def _git(env: dict[str, str], *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.reveals_secrets  # the helper hands git its token: its job
def test_git_push_over_http_with_only_the_helper_and_refused_after_kill(
    served: tuple[GitHubWorld, str, Path],
) -> None:
    world, url, root = served
    contract = contract_for("pr-review-agent", GRANT)
    app = world.register(contract)
    world.install(int(app["app_id"]))
    engine = world.engine()
    assert engine.apply(engine.plan([contract])).ok
    # The helper answers for github.web_url's host: here, the local git server.
    config = world.write_config(world.config(web_url=url))
    helper = (
        f"!{shlex.quote(sys.executable)} -m agentctl --config {shlex.quote(str(config))} "
        f"--state {shlex.quote(world.state_url)} git-credential pr-review-agent"
    )
    home = world.root / "git-home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "GIT_AUTHOR_NAME": "agent",
        "GIT_AUTHOR_EMAIL": "agent@example.com",
        "GIT_COMMITTER_NAME": "agent",
        "GIT_COMMITTER_EMAIL": "agent@example.com",
    }
    work = world.root / "work"
    work.mkdir()
    assert _git(env, "init", "-q", "-b", "main", cwd=work).returncode == 0
    (work / "README").write_text("hello\n")
    assert _git(env, "add", "README", cwd=work).returncode == 0
    assert _git(env, "commit", "-q", "-m", "first", cwd=work).returncode == 0
    remote = f"{url}/api.git"
    push = _git(env, "-c", f"credential.helper={helper}", "push", remote, "main", cwd=work)
    assert push.returncode == 0, push.stderr
    log = subprocess.run(
        ["git", "--git-dir", str(root / "api.git"), "log", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.strip() == "first"
    issued = world.open_state().audit_events(action="credentials.issue")
    assert issued and {e.detail["command"] for e in issued} == {"git-credential"}

    killed = run(
        [
            *("--config", str(config), "--state", world.state_url),
            *("kill", "pr-review-agent", "--reason", "INC-22", "--yes"),
        ]
    )
    assert killed in (0, 1)  # no AWS in this world: that part reads undone
    (work / "README").write_text("after the kill\n")
    assert _git(env, "commit", "-qam", "second", cwd=work).returncode == 0
    refused = _git(env, "-c", f"credential.helper={helper}", "push", remote, "main", cwd=work)
    assert refused.returncode != 0
    assert "killed" in refused.stderr
    log = subprocess.run(
        ["git", "--git-dir", str(root / "api.git"), "log", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.strip() == "first"
