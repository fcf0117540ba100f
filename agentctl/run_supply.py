"""Credentials an ``exec`` child reads from files that exec keeps fresh.

A GitHub installation token lives one hour (GitHub's maximum) and an AWS
session is fixed when it is minted, so a long run needs new ones. exec — the
supervising process, which already holds the state store and the runtime
principal — mints them before the old ones expire and writes them into a
private directory (0700, files 0600, written atomically, removed when the run
ends). The child only *reads*:

- AWS: ``AWS_CONFIG_FILE`` + ``AWS_PROFILE`` name a profile whose
  ``credential_process`` prints the current session from that directory, so
  every AWS SDK and the AWS CLI pick up each new session by themselves.
- GitHub: ``AGENTCTL_GITHUB_TOKEN_FILE`` holds the current token; git is
  configured (``GIT_CONFIG_COUNT``) with a credential helper for the GitHub
  host that answers from that file.

Why not ``credential_process = agentctl credentials ...`` in the child: the
child would then need what minting needs (the runtime principal's keys, the
state store, the secret store) — the agent would hold the means to mint for
itself. Here every refresh happens in exec, goes through the run gates
(killed, expired) and is audited with the run id; a refused refresh deletes
the files and leaves the reason, so the child keeps nothing fresh.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agentctl.providers.base import IssuedCredential

AWS_FILE = "aws-credentials.json"
GITHUB_FILE = "github-token"
REFUSED_FILE = "refused"
CONFIG_FILE = "aws-config"
# Secret keys the files carry instead of the child's environment.
AWS_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
GITHUB_SECRET_KEYS = ("GITHUB_TOKEN", "GH_TOKEN")


def _wall_clock() -> datetime:
    # Expiries come from AWS and GitHub in real time, whatever clock the engine reads.
    return datetime.now(UTC)


def _reveal(value: object) -> str:
    return value if isinstance(value, str) else value.reveal()  # type: ignore[attr-defined]


def _write_private(path: Path, text: str) -> None:
    """0600 from the start, then renamed over the old file: a reader sees the
    old value or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


@dataclass
class _Held:
    credential: IssuedCredential
    refresh_at: datetime


@dataclass
class RunSupply:
    """The private directory of one run and what it holds (see the module docstring)."""

    agent: str
    github_host: str | None  # scheme://host of GitHub's web URL, for git's helper
    margin: timedelta
    wall: Callable[[], datetime] = _wall_clock
    directory: Path = field(init=False)
    _held: dict[str, _Held] = field(init=False, default_factory=dict)
    last_failure: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="agentctl-run-"))  # 0700

    # -- what the child gets --------------------------------------------------------

    def child_environment(
        self, credentials: tuple[IssuedCredential, ...], environ: Mapping[str, str]
    ) -> dict[str, str]:
        """Variables to add to the child's environment (and the secret keys it
        must not get as fixed values: the ``None`` ones)."""
        env: dict[str, str] = {}
        providers = {c.provider for c in credentials}
        if "aws" in providers:
            profile = f"agentctl-{self.agent}"
            command = shlex.join(
                [
                    "/bin/sh",
                    "-c",
                    'cat "$0" 2>/dev/null || { cat "$1" >&2; exit 1; }',
                    str(self.directory / AWS_FILE),
                    str(self.directory / REFUSED_FILE),
                ]
            )
            _write_private(
                self.directory / CONFIG_FILE,
                f"[profile {profile}]\ncredential_process = {command}\n",
            )
            env["AWS_CONFIG_FILE"] = str(self.directory / CONFIG_FILE)
            env["AWS_PROFILE"] = profile
        if "github" in providers:
            token_file = self.directory / GITHUB_FILE
            env["AGENTCTL_GITHUB_TOKEN_FILE"] = str(token_file)
            if self.github_host:
                index = int(environ.get("GIT_CONFIG_COUNT", "0") or 0)
                helper = (
                    '!f() { test "$1" = get || exit 0; '
                    f"t=$(cat {shlex.quote(str(token_file))}) || exit 1; "
                    "printf 'username=x-access-token\\npassword=%s\\n' \"$t\"; }; f"
                )
                env["GIT_CONFIG_COUNT"] = str(index + 1)
                env[f"GIT_CONFIG_KEY_{index}"] = f"credential.{self.github_host}.helper"
                env[f"GIT_CONFIG_VALUE_{index}"] = helper
        return env

    # -- keeping it fresh -----------------------------------------------------------

    def hold(self, credentials: tuple[IssuedCredential, ...]) -> None:
        """Write ``credentials`` into the files and schedule their refresh."""
        now = self.wall()
        for credential in credentials:
            if credential.provider == "aws":
                env = credential.environment
                _write_private(
                    self.directory / AWS_FILE,
                    json.dumps(
                        {
                            # The credential_process contract (Version 1):
                            # https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html
                            "Version": 1,
                            "AccessKeyId": _reveal(env["AWS_ACCESS_KEY_ID"]),
                            "SecretAccessKey": _reveal(env["AWS_SECRET_ACCESS_KEY"]),
                            "SessionToken": _reveal(env["AWS_SESSION_TOKEN"]),
                            "Expiration": credential.expires_at.astimezone(UTC)
                            .isoformat()
                            .replace("+00:00", "Z"),
                        }
                    ),
                )
            elif credential.provider == "github":
                _write_private(
                    self.directory / GITHUB_FILE, _reveal(credential.environment["GITHUB_TOKEN"])
                )
            else:
                continue
            # Both ends as the provider recorded them (one clock), so the life is
            # right even where agentctl's clock is pinned (rehearsals, tests).
            life = credential.expires_at - credential.issued_at
            # Before the margin (the AWS SDKs re-read 15 minutes before expiry), and
            # for short lives half-way, so a refresh never chases its own tail.
            self._held[credential.provider] = _Held(
                credential, now + max(life - self.margin, life / 2)
            )
        (self.directory / REFUSED_FILE).unlink(missing_ok=True)

    def held(self) -> tuple[str, ...]:
        """Providers whose credentials the files hold and exec keeps fresh."""
        return tuple(sorted(self._held))

    def due(self) -> tuple[str, ...]:
        """Providers whose credentials are due for a refresh."""
        now = self.wall()
        return tuple(sorted(p for p, held in self._held.items() if now >= held.refresh_at))

    def retry_later(self, providers: tuple[str, ...], wait: timedelta, reason: str) -> None:
        """A refresh failed (not refused): what the child holds still works
        until it expires; ask again after ``wait``."""
        self.last_failure = reason
        for provider in providers:
            self._held[provider].refresh_at = self.wall() + wait

    def stop_refreshing(self) -> None:
        """The run's --duration is up: what the child holds lives out its time."""
        self._held.clear()

    def cut_off(self, reason: str) -> None:
        """A refresh was refused: delete what the child could read, say why."""
        for name in (AWS_FILE, GITHUB_FILE):
            (self.directory / name).unlink(missing_ok=True)
        _write_private(self.directory / REFUSED_FILE, f"agentctl: {reason}\n")
        self._held.clear()

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
