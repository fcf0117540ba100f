"""``agentctl status [NAME]`` / ``agentctl list``: every agent with owner, mode,
expiry, status, providers, last rotation and live credentials — text and JSON,
through the real CLI against moto with IAM enforcement on (fixture ``cli``).

JSON shape (``--output json``), agents sorted by name::

    {"agents": [
      {
        "name": "alpha-agent",
        "owner": "platform-team@company.com",
        "execution_mode": "autonomous",     # | approval_required | on_behalf_of_user
        "expiry": "2027-03-01",             # null if known only from a provider
        "status": "active",                 # | killed | expired | removed | drifted
        "status_reason": null,              # e.g. the kill's --reason
        "providers": ["aws"],               # providers holding resources for it
        "last_rotated_at": null,            # ISO 8601 time of the last rotate
        "live_credentials": 0,              # issued, not expired, not revoked
        "drift": []                         # drift findings, if any were passed in
      }
    ]}
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cli_helpers import BOTH_WAYS
from contract_helpers import NOW, TODAY

if TYPE_CHECKING:
    from cli_helpers import Cli


KEYS = [
    "name",
    "owner",
    "execution_mode",
    "expiry",
    "status",
    "status_reason",
    "providers",
    "last_rotated_at",
    "live_credentials",
    "drift",
    "long_lived_secrets",
]


def view(name: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "owner": "platform-team@company.com",
        "execution_mode": "autonomous",
        "expiry": "2027-03-01",
        "status": "active",
        "status_reason": None,
        "providers": ["aws"],
        "last_rotated_at": None,
        "live_credentials": 0,
        "drift": [],
        "long_lived_secrets": [],
    }
    base.update(overrides)
    return base


@BOTH_WAYS
def test_a_missing_state_store_is_an_error_until_created_on_purpose(cli: Cli) -> None:
    # agentctl.yaml names a state file that is not there (a typo, or a new
    # set-up): status must not create it and report "no agents" to cron.
    missing = cli("status")
    assert missing.code == 1
    assert f"no state database at {cli.state_path}" in missing.err
    assert "`agentctl state init`" in missing.err
    assert not cli.state_path.exists()
    for read_only in (("list",), ("expiring", "--days", "30"), ("audit",), ("audit", "verify")):
        assert cli(*read_only).code == 1, read_only
    assert not cli.state_path.exists()

    created = cli("state", "init")
    assert created.code == 0, created.err
    assert "schema version" in created.out and cli.state_path.exists()
    text = cli("status")
    assert text.code == 0
    assert "No agents recorded yet" in text.out
    listed = cli("list", "-o", "json")
    assert listed.code == 0 and listed.json() == {"agents": []}


@BOTH_WAYS
def test_status_json_shape_and_values(cli: Cli) -> None:
    cli.write("alpha-agent")
    cli.write("beta-agent", owner="data-team@company.com", mode="approval_required")
    cli.write("gamma-agent", mode="on_behalf_of_user", expiry=TODAY + timedelta(days=10))
    assert cli("apply", cli.contracts, "--yes").code == 0
    assert cli("kill", "beta-agent", "--yes", "--reason", "INC-9").code == 0
    assert cli("rotate", "alpha-agent").code == 0
    with cli.state() as state:  # one live and one expired credential of alpha
        for i, expires in enumerate((NOW + timedelta(minutes=30), NOW - timedelta(minutes=1))):
            state.add_credential(
                id=f"cred-{i}",
                agent="alpha-agent",
                provider="aws",
                kind="session",
                fingerprint=f"{i:016d}",
                issued_at=NOW - timedelta(hours=1),
                expires_at=expires,
            )

    result = cli("status", "-o", "json")

    assert result.code == 0, result.err
    agents = result.json()["agents"]
    assert [list(a) for a in agents] == [KEYS] * 3  # keys, in the documented order
    assert agents == [
        view("alpha-agent", last_rotated_at=NOW.isoformat(), live_credentials=1),
        view(
            "beta-agent",
            owner="data-team@company.com",
            execution_mode="approval_required",
            status="killed",
            status_reason="INC-9",
        ),
        view(
            "gamma-agent",
            execution_mode="on_behalf_of_user",
            expiry=(TODAY + timedelta(days=10)).isoformat(),
        ),
    ]
    # `list` is the same command; `status NAME` is one agent.
    assert cli("list", "-o", "json").json() == {"agents": agents}
    one = cli("status", "beta-agent", "-o", "json")
    assert one.code == 0 and one.json() == {"agents": [agents[1]]}


def test_status_reports_an_agent_past_its_expiry_as_expired(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.write("gamma-agent", expiry=TODAY + timedelta(days=10))
    assert cli("apply", cli.contracts, "--yes").code == 0

    cli.now = NOW + timedelta(days=10)
    (gamma,) = cli("status", "-o", "json").json()["agents"]

    assert gamma["status"] == "expired"  # even before the next apply disables it


def test_status_text_table(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: one line per agent
    cli.write("alpha-agent")
    cli.write("beta-agent")
    assert cli("apply", cli.contracts, "--yes").code == 0
    assert cli("kill", "beta-agent", "--yes").code == 0
    assert cli("rotate", "alpha-agent").code == 0

    result = cli("list")

    assert result.code == 0
    lines = result.out.splitlines()
    header = next(line for line in lines if "agent" in line and "owner" in line)
    for column in (
        "mode",
        "expiry",
        "status",
        "providers",
        "last rotated",
        "live creds",
        "long-lived secrets",
    ):
        assert column in header
    alpha = next(line for line in lines if "alpha-agent" in line)
    beta = next(line for line in lines if "beta-agent" in line)
    for expected in ("platform-team@company.com", "autonomous", "2027-03-01", "active", "aws"):
        assert expected in alpha
    assert NOW.strftime("%Y-%m-%d %H:%M") in alpha
    assert "killed" in beta and "never" in beta


def test_status_of_an_unknown_agent(cli: Cli) -> None:
    cli.write("alpha-agent")
    assert cli("apply", cli.contracts, "--yes").code == 0

    result = cli("status", "alpha")

    assert result.code == 1
    assert result.out == ""
    assert "no agent named 'alpha'" in result.err


@pytest.mark.postgres
def test_an_empty_postgresql_database_is_refused_by_reads_until_state_migrate(
    cli: Cli, postgres_url: str
) -> None:
    """A team's new PostgreSQL database (or a URL naming the wrong one): reads
    say it has no agentctl tables and create none; `state migrate` creates
    them, and running it again changes nothing."""
    cli.write("alpha-agent")
    for read_only in (("status",), ("expiring", "--days", "30", str(cli.contracts)), ("audit",)):
        refused = cli("--state", postgres_url, *read_only)
        assert refused.code == 1, read_only
        assert "has no agentctl tables" in refused.err
        assert "`agentctl state init`" in refused.err
        assert "password" not in refused.err.lower()
    assert cli("--state", postgres_url, "status").code == 1  # still nothing created

    migrated = cli("--state", postgres_url, "state", "migrate", "-o", "json")
    assert migrated.code == 0, migrated.err
    first = migrated.json()
    assert first["dialect"] == "postgresql" and first["schema_version"] >= 1
    again = cli("--state", postgres_url, "state", "migrate", "-o", "json")
    assert again.code == 0 and again.json() == first
    assert cli("--state", postgres_url, "apply", cli.contracts, "--yes").code == 0
    listed = cli("--state", postgres_url, "list", "-o", "json")
    assert [a["name"] for a in listed.json()["agents"]] == ["alpha-agent"]


def test_plain_table_aligns_columns_and_shows_control_characters() -> None:
    """Off a terminal a table is one line per row, columns two spaces apart; a
    value holding a control character is shown escaped, never sent to the
    terminal, and only its row is affected."""
    import io

    from rich.console import Console

    from agentctl.render import Output

    stream = io.StringIO()
    Output(Console(file=stream, force_terminal=False)).table(
        ("agent", "owner", "n"),
        [
            ["a", "x@company.com", "1"],
            ["bee-agent", ("evil\x1b[2Jowner", "red"), "22"],
            ["c", "", "3"],
        ],
    )
    assert stream.getvalue().splitlines() == [
        "agent      owner             n",
        "a          x@company.com     1",
        "bee-agent  evil\\x1b[2Jowner  22",
        "c                            3",
    ]


def test_a_long_table_on_a_terminal_is_one_coloured_line_per_row() -> None:
    """Past RICH_TABLE_MAX_ROWS a terminal gets the plain layout (a rich Table
    of 10,000 agents took 6 s of CPU): one line per row, columns aligned, the
    styled cells still coloured (and plain under NO_COLOR); a short table is
    still a rich table."""
    import io

    from rich.console import Console

    from agentctl.render import RICH_TABLE_MAX_ROWS, Output

    def shown(count: int, **console: Any) -> list[str]:
        stream = io.StringIO()
        rows: list[list[Any]] = [["agent-00000", ("active", "red"), "x\x07"]]
        rows += [[f"agent-{n:05d}", ("active", "green"), "-"] for n in range(1, count)]
        terminal = Console(file=stream, force_terminal=True, width=40, **console)
        Output(terminal).table(("agent", "status", "note"), rows)
        return stream.getvalue().splitlines()

    long = shown(RICH_TABLE_MAX_ROWS + 1, color_system="standard")
    assert len(long) == RICH_TABLE_MAX_ROWS + 2  # header + one line per row, wider than 40
    assert long[0] == "\x1b[1magent        status  note\x1b[0m"
    assert long[1] == "agent-00000  \x1b[31mactive\x1b[0m  x\\x07"  # control characters shown
    assert long[2] == "agent-00001  \x1b[32mactive\x1b[0m  -"
    assert shown(RICH_TABLE_MAX_ROWS + 1, color_system="standard", no_color=True)[1] == (
        "agent-00000  active  x\\x07"
    )
    short = shown(3, color_system="standard")
    assert any("┃" in line or "│" in line for line in short)  # rich's table
