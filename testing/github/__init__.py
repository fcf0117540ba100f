"""A local GitHub REST API emulator: a real HTTP server for tests and the demo.

It answers the GitHub App endpoints agentctl depends on (the "apps" subset of
GitHub's official OpenAPI description) the way api.github.com does, so that the
GitHub provider and githubkit can be exercised end to end without a network:

* App endpoints (``/app``, ``/app/...``, ``/orgs/{org}/installation``,
  ``/repos/{owner}/{repo}/installation``) require an RS256 JWT signed with the
  App's private key, checked with GitHub's rules.
* Resource endpoints require an installation access token (``ghs_...``) and
  enforce its permissions and repositories exactly as GitHub does.
* Every response body is complete: it validates against the response schema of
  the description, because clients such as githubkit validate what they parse.

A control API under ``/_emulator/`` (JSON, no auth) and the same operations as
Python methods on :class:`GitHubEmulator` build the world (accounts,
repositories, issues, pull requests, Apps, manifest codes, installations),
inject faults (5xx, primary/secondary rate limits) and expose a request log, so
tests can count the mutating calls a command made.

The package is split by concern, each layer using only those above it:

- :mod:`~testing.github.errors`: GitHub's error shape and messages;
- :mod:`~testing.github.validation`: request-body checks;
- :mod:`~testing.github.world`: the emulated state and the rules that change it;
- :mod:`~testing.github.rendering`: complete response objects;
- :mod:`~testing.github.routes`: the REST endpoints (auth, permissions, handlers);
- :mod:`~testing.github.server`: :class:`GitHubEmulator` (HTTP server, faults,
  request log, control API) and ``main``.

Run it as a process for the demo::

    python -m testing.github --port 0 --state-file emu.json

It prints its base URL on the first line of stdout and serves until SIGTERM or
SIGINT.
"""

from testing.github.errors import ApiError
from testing.github.server import GitHubEmulator, main
from testing.github.world import DEFAULT_USER

__all__ = ["DEFAULT_USER", "ApiError", "GitHubEmulator", "main"]
