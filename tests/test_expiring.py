"""``agentctl expiring``: what is due, grouped by owner, with a frozen clock.

A generated set of 60 contracts over 5 owners, with expiries from 20 days ago
to 200 days ahead (including the edges: yesterday, today, tomorrow, and 29, 30
and 31 days ahead), plus agents recorded in the state whose credentials are
older than ``rotation_max_age_days``. The expected items are computed here
from the generated data, independently of the engine.

What is due, for ``--days N`` on day T:
- ``contract-expired``: the contract's expiry is on or before T (an agent
  expiring today may no longer act); ``days_left`` <= 0;
- ``contract-expiring``: T < expiry <= T + N;
- ``credential-rotation-due``: an *active* agent with provisioned resources
  whose last rotation (or, never rotated, its first apply) plus
  ``rotation_max_age_days`` is on or before T.

Exit codes: 0 and NO output at all when nothing is due (cron mails only when
a job prints something); 1 when anything is due.

JSON shape (``agentctl expiring --output json``), owners sorted by address,
items of an owner by ``days_left`` then agent name::

    {
      "today": "2026-11-28",          # the day judged against (ISO date)
      "days": 30,                     # the --days window
      "due": 3,                       # number of items over all owners
      "owners": [
        {
          "owner": "data-team@company.com",
          "items": [
            {
              "agent": "etl-agent",
              "owner": "data-team@company.com",
              "kind": "contract-expired",        # | "contract-expiring"
                                                  # | "credential-rotation-due"
              "due": "2026-11-20",               # expiry, or when rotation fell due
              "days_left": -8,                   # negative: overdue
              "detail": "expired on 2026-11-20: renew the contract or remove it",
              "file": "contracts/etl-agent.yaml" # null for rotation items
            }
          ]
        }
      ]
    }
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from contract_helpers import NOW, TODAY, contract_document, s3_read

from agentctl.cli import app
from agentctl.config import Config
from agentctl.contract import load_contracts
from agentctl.engine import Engine
from agentctl.identity import Actor
from agentctl.model import AgentStatus
from agentctl.render import json_data
from agentctl.state import StateStore, open_state


def run(argv: list[str]) -> int:
    """The real CLI in this process, its clock at the tests' NOW."""
    return app.run(argv, clock=lambda: NOW)


OWNERS = [f"{team}@company.com" for team in ("data", "infra", "ml", "platform", "security")]
# Days from TODAY to each generated contract's expiry: the edges, then a spread.
EDGES = [-1, 0, 1, 29, 30, 31]
SPREAD = [-20 + round(i * 220 / 53) for i in range(54)]  # -20 .. 200
MAX_AGE = 90  # rotation_max_age_days


@dataclass(frozen=True)
class Generated:
    name: str
    owner: str
    offset: int  # expiry - TODAY, in days

    @property
    def expiry(self) -> date:
        return TODAY + timedelta(days=self.offset)


def generate(folder: Path) -> list[Generated]:
    """60 contract files; names do not sort like expiries or owners."""
    rng = random.Random(20261128)
    offsets = EDGES + SPREAD
    rng.shuffle(offsets)
    agents = []
    for i, offset in enumerate(offsets):
        agent = Generated(f"agent-{i:02d}-{rng.choice('abcdefgh')}", rng.choice(OWNERS), offset)
        document = contract_document(
            agent.name, owner=agent.owner, expiry=agent.expiry, aws=s3_read(f"bucket-{i}")
        )
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{agent.name}.yaml").write_text(
            yaml.safe_dump(document, sort_keys=False), "utf-8"
        )
        agents.append(agent)
    assert len(agents) == 60 and len({a.owner for a in agents}) == 5
    return agents


def contract_items(agents: list[Generated], folder: Path, days: int) -> list[dict[str, Any]]:
    items = []
    for agent in agents:
        left = agent.offset
        if left <= 0:
            kind = "contract-expired"
            detail = f"expired on {agent.expiry.isoformat()}: renew the contract or remove it"
        elif left <= days:
            kind = "contract-expiring"
            plural = "s" if left != 1 else ""
            detail = (
                f"expires in {left} day{plural} ({agent.expiry.isoformat()}): "
                "extend the expiry or let it lapse"
            )
        else:
            continue
        items.append(
            {
                "agent": agent.name,
                "owner": agent.owner,
                "kind": kind,
                "due": agent.expiry.isoformat(),
                "days_left": left,
                "detail": detail,
                "file": str(folder / f"{agent.name}.yaml"),
            }
        )
    return items


# -- credentials due for rotation -------------------------------------------------


class SettableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Recorded:
    name: str
    owner: str  # as recorded in the state (the contract's owner wins if there is one)
    created: datetime
    rotated: datetime | None = None
    status: AgentStatus = AgentStatus.ACTIVE
    resources: bool = True

    @property
    def since(self) -> datetime:
        return self.rotated or self.created


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)


def record_agents(url: str, recorded: list[Recorded]) -> None:
    clock = SettableClock(NOW)
    store = open_state(url, clock=clock)
    try:
        for agent in recorded:
            clock.now = agent.created
            store.upsert_agent(
                agent.name,
                owner=agent.owner,
                purpose="recorded",
                execution_mode="autonomous",
                expiry=TODAY + timedelta(days=300),
                contract_hash="0" * 64,
            )
            if agent.resources:
                store.put_resource(
                    agent.name, "aws", f"arn:aws:iam::123456789012:role/{agent.name}", {}
                )
            if agent.rotated is not None:
                store.mark_rotated(agent.name, agent.rotated)
            if agent.status != AgentStatus.ACTIVE:
                store.set_agent_status(agent.name, agent.status, "INC-1")
    finally:
        store.close()


def rotation_scenario(agents: list[Generated]) -> list[Recorded]:
    """Some generated agents (so their contract's owner applies) and one known
    only to the state, each on one side of the rotation rule."""
    far = [a for a in agents if a.offset > 60]
    soon = next(a for a in agents if a.offset == 29)  # due twice: expiry and rotation
    long_ago = at(TODAY - timedelta(days=300))
    return [
        # never rotated since the first apply 180 days ago: due
        Recorded(far[0].name, "stale-owner@company.com", at(TODAY - timedelta(days=180))),
        # rotated exactly MAX_AGE days ago: due today
        Recorded(far[1].name, far[1].owner, long_ago, rotated=at(TODAY - timedelta(days=MAX_AGE))),
        # rotated MAX_AGE - 1 days ago: not yet
        Recorded(
            far[2].name, far[2].owner, long_ago, rotated=at(TODAY - timedelta(days=MAX_AGE - 1))
        ),
        # old, but killed (every session is denied anyway): not reported
        Recorded(far[3].name, far[3].owner, long_ago, status=AgentStatus.KILLED),
        # old, but nothing provisioned: nothing to rotate
        Recorded(far[4].name, far[4].owner, long_ago, resources=False),
        Recorded(soon.name, soon.owner, long_ago, rotated=at(TODAY - timedelta(days=200))),
        # its contract is gone, its role is not: the recorded owner is told
        Recorded("legacy-agent", "legacy@company.com", long_ago),
    ]


def rotation_items(recorded: list[Recorded], agents: list[Generated]) -> list[dict[str, Any]]:
    owners = {a.name: a.owner for a in agents}
    items = []
    for agent in recorded:
        due = (agent.since + timedelta(days=MAX_AGE)).date()
        if agent.status != AgentStatus.ACTIVE or not agent.resources or due > TODAY:
            continue
        items.append(
            {
                "agent": agent.name,
                "owner": owners.get(agent.name, agent.owner),
                "kind": "credential-rotation-due",
                "due": due.isoformat(),
                "days_left": (due - TODAY).days,
                "detail": (
                    f"credentials last rotated {agent.since.date().isoformat()} "
                    f"(older than {MAX_AGE} days): run `agentctl rotate {agent.name}`"
                ),
                "file": None,
            }
        )
    return items


def grouped(items: list[dict[str, Any]], days: int) -> dict[str, Any]:
    """The documented JSON shape, built from the expected items."""
    owners: dict[str, list[dict[str, Any]]] = {}
    for item in sorted(items, key=lambda i: (i["owner"], i["days_left"], i["agent"])):
        owners.setdefault(item["owner"], []).append(item)
    return {
        "today": TODAY.isoformat(),
        "days": days,
        "due": len(items),
        "owners": [{"owner": owner, "items": found} for owner, found in owners.items()],
    }


# -- fixtures -----------------------------------------------------------------------


@dataclass
class World:
    folder: Path
    agents: list[Generated]
    recorded: list[Recorded]
    state_path: Path

    @property
    def state_url(self) -> str:
        return f"sqlite:///{self.state_path}"

    def expected(self, days: int) -> dict[str, Any]:
        items = contract_items(self.agents, self.folder, days)
        items += rotation_items(self.recorded, self.agents)
        return grouped(items, days)


@pytest.fixture
def world(tmp_path: Path) -> World:
    folder = tmp_path / "contracts"
    agents = generate(folder)
    recorded = rotation_scenario(agents)
    state_path = tmp_path / "state.db"
    record_agents(f"sqlite:///{state_path}", recorded)
    return World(folder, agents, recorded, state_path)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's clock pinned to NOW and a config of its own (never the user's)."""
    config = tmp_path / "agentctl.yaml"
    config.write_text(
        yaml.safe_dump(
            {"rotation_max_age_days": MAX_AGE, "journal": str(tmp_path / "journal.jsonl")}
        ),
        "utf-8",
    )
    monkeypatch.setenv("AGENTCTL_CONFIG", str(config))
    monkeypatch.delenv("AGENTCTL_STATE", raising=False)
    return config


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    store: StateStore = open_state(url, clock=lambda: NOW)
    try:
        yield Engine(
            config=Config(rotation_max_age_days=MAX_AGE),
            providers={},
            state_factory=lambda: store,
            identify=lambda: Actor.declared("test"),
            clock=lambda: NOW,
        )
    finally:
        store.close()


# -- the engine -------------------------------------------------------------------------


@pytest.mark.parametrize("days", [30, 0, 200])
def test_engine_reports_exactly_the_expected_agents_by_owner(world: World, days: int) -> None:
    report = load_contracts([world.folder], today=TODAY)
    assert len(report.contracts) + len(report.expired) == 60
    with engine_for(world.state_url) as engine:
        result = engine.expiring(report.contracts, report.expired, days=days)
        assert json_data(result) == world.expected(days)
        # by_owner() is what the text output walks: same grouping and order.
        assert [
            (owner, [i.agent for i in items]) for owner, items in result.by_owner().items()
        ] == [
            (group["owner"], [i["agent"] for i in group["items"]])
            for group in world.expected(days)["owners"]
        ]


def test_days_zero_reports_only_what_is_already_due(world: World) -> None:
    expected = world.expected(0)
    kinds = {i["kind"] for group in expected["owners"] for i in group["items"]}
    assert kinds == {"contract-expired", "credential-rotation-due"}
    expired_now = sorted(a.name for a in world.agents if a.offset <= 0)
    reported = sorted(
        i["agent"]
        for group in expected["owners"]
        for i in group["items"]
        if i["kind"] == "contract-expired"
    )
    assert reported == expired_now and len(expired_now) > 5
    # the edges: today and yesterday are expired, tomorrow is not yet
    by_offset = {a.offset: a.name for a in world.agents}
    assert by_offset[0] in reported and by_offset[-1] in reported
    assert by_offset[1] not in reported


def test_rotation_due_follows_the_configured_age(world: World) -> None:
    rotation = rotation_items(world.recorded, world.agents)
    # the scenario has due and not-due agents on each side of every rule
    assert {i["agent"] for i in rotation} == {
        world.recorded[0].name,
        world.recorded[1].name,
        world.recorded[5].name,
        "legacy-agent",
    }
    report = load_contracts([world.folder], today=TODAY)
    with engine_for(world.state_url) as engine:
        result = engine.expiring(report.contracts, report.expired, days=30)
        due = sorted(i.agent for i in result.items if i.kind == "credential-rotation-due")
        assert due == sorted(i["agent"] for i in rotation)
        # The contract's owner is told, not a stale owner recorded in the state.
        first = next(i for i in result.items if i.agent == world.recorded[0].name)
        assert first.owner != "stale-owner@company.com"
        assert first.days_left == MAX_AGE - 180
        # A longer maximum age makes fewer credentials due.
        engine.config = Config(rotation_max_age_days=365)
        later = engine.expiring(report.contracts, report.expired, days=30)
        assert not [i for i in later.items if i.kind == "credential-rotation-due"]


# -- the CLI ------------------------------------------------------------------------------


def test_cli_json_shape_is_exact(
    world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        [
            "--state",
            str(world.state_path),
            "expiring",
            "--days",
            "30",
            "--output",
            "json",
            str(world.folder),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert json.loads(out) == world.expected(30)
    assert err == ""


def test_cli_text_off_a_terminal_is_one_record_per_line_by_owner(
    world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # cron mail and pipes: every line carries its owner, so grep keeps whole records.
    code = run(["--state", str(world.state_path), "expiring", "--days", "30", str(world.folder)])
    out, err = capsys.readouterr()
    assert code == 1 and err == ""
    lines = [
        f"{group['owner']}  {i['agent']}: {i['kind']}: {i['detail']}"
        for group in world.expected(30)["owners"]
        for i in group["items"]
    ]
    assert out.splitlines() == lines


def test_cli_days_zero(world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        [
            "--state",
            str(world.state_path),
            "expiring",
            "--days",
            "0",
            "-o",
            "json",
            str(world.folder),
        ]
    )
    assert code == 1
    assert json.loads(capsys.readouterr().out) == world.expected(0)


def test_cli_prints_nothing_and_exits_0_when_nothing_is_due(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "quiet"
    for i, offset in enumerate((31, 90, 200)):
        document = contract_document(
            f"quiet-{i}", expiry=TODAY + timedelta(days=offset), aws=s3_read("bucket")
        )
        folder.mkdir(exist_ok=True)
        (folder / f"quiet-{i}.yaml").write_text(yaml.safe_dump(document), "utf-8")
    state = tmp_path / "quiet.db"
    # recently rotated: not due either
    record_agents(
        f"sqlite:///{state}",
        [Recorded("quiet-0", "platform-team@company.com", at(TODAY - timedelta(days=10)))],
    )

    code = run(["--state", str(state), "expiring", "--days", "30", str(folder)])

    assert code == 0
    assert capsys.readouterr() == ("", "")
    # JSON consumers still get a document
    assert run(["--state", str(state), "expiring", "-o", "json", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "today": TODAY.isoformat(),
        "days": 30,
        "due": 0,
        "owners": [],
    }


def test_cli_frozen_clock_moves_what_is_due(
    world: World, cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The clock the CLI is given is the one it reads: 31 days later, the agent
    that was 31 days away expires today."""
    later = NOW + timedelta(days=31)
    code = app.run(
        [
            "--state",
            str(world.state_path),
            "expiring",
            "--days",
            "0",
            "-o",
            "json",
            str(world.folder),
        ],
        clock=lambda: later,
    )
    assert code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["today"] == later.date().isoformat()
    by_offset = {a.offset: a.name for a in world.agents}
    expired = {
        i["agent"]: i["days_left"]
        for group in result["owners"]
        for i in group["items"]
        if i["kind"] == "contract-expired"
    }
    assert expired[by_offset[31]] == 0 and expired[by_offset[-1]] == -32
    assert by_offset[34] not in expired and by_offset[200] not in expired


def test_cli_contract_error_blocks_expiring(
    world: World, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (world.folder / "broken.yaml").write_text("agent: [not, a, mapping]\n", "utf-8")
    code = run(["--state", str(world.state_path), "expiring", str(world.folder)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "broken.yaml" in err and "Traceback" not in err


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(lambda tmp: f"postgresql://nobody@127.0.0.1:{closed_port()}/x", id="pg-down"),
        pytest.param(lambda tmp: str(tmp / "typo" / "stat.db"), id="sqlite-typo"),
    ],
)
def test_cli_fails_loudly_when_the_state_cannot_be_read(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str], state: Any
) -> None:
    """Cron mails only what a job prints: a state store that cannot be read
    means rotation checks were skipped, so the run fails with one line on
    stderr (never exit 0 and silence), and a typo creates nothing."""
    folder = tmp_path / "contracts"
    folder.mkdir()
    document = contract_document("quiet-0", expiry=TODAY + timedelta(days=90), aws=s3_read("b"))
    (folder / "quiet-0.yaml").write_text(yaml.safe_dump(document), "utf-8")
    url = state(tmp_path)

    code = run(["--state", url, "expiring", "--days", "30", str(folder)])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("include_credentials", [True, False])
def test_an_unreadable_state_fails_expiring_even_without_credentials(
    include_credentials: bool, tmp_path: Path
) -> None:
    """Kills not confirmed everywhere come from the state: a state that cannot be
    read fails the report instead of hiding them (only a state that does not
    exist yet, when credentials are not asked for, reports contracts alone)."""
    from agentctl.errors import StateError, StateNotFound

    def broken() -> StateStore:
        raise StateError("the state database refused the connection")

    def missing() -> StateStore:
        raise StateNotFound("no state store at sqlite:///nowhere.db")

    contract = contract_document("lone-0", expiry=TODAY + timedelta(days=3), aws=s3_read("b"))
    (tmp_path / "lone-0.yaml").write_text(yaml.safe_dump(contract), "utf-8")
    report = load_contracts([tmp_path], today=TODAY).contracts
    for factory in (broken, missing):
        engine = Engine(
            config=Config(rotation_max_age_days=MAX_AGE),
            providers={},
            state_factory=factory,
            identify=lambda: Actor.declared("test"),
            clock=lambda: NOW,
        )
        if factory is missing and not include_credentials:
            result = engine.expiring(report, [], days=30, include_credentials=False)
            assert [(i.agent, i.kind) for i in result.items] == [("lone-0", "contract-expiring")]
            continue
        with pytest.raises(StateError):
            engine.expiring(report, [], days=30, include_credentials=include_credentials)


def test_only_agentctls_own_default_store_not_yet_created_counts_as_nothing_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`expiring` reads contracts alone only when nobody named a state and the
    default one was never created; a named state that is missing still fails
    the run (test_cli_fails_loudly_when_the_state_cannot_be_read)."""
    from agentctl.commands import Session
    from agentctl.config import default_state_url
    from agentctl.state.snapshot import sqlite_path

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("AGENTCTL_STATE", raising=False)
    monkeypatch.delenv("AGENTCTL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert Session().default_state_absent()
    assert not Session(state_url=str(tmp_path / "named.db")).default_state_absent()
    default = sqlite_path(default_state_url())
    assert default is not None and str(default).startswith(str(tmp_path / "xdg"))
    open_state(default_state_url()).close()
    assert not Session().default_state_absent()
