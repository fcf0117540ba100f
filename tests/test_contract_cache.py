"""Contracts validated clean today are not validated again while their bytes,
path and validation context stay the same (agentctl.contract_cache): what plan
and apply get is the same, and any difference validates afresh."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from contract_helpers import TODAY, s3_read, write_contract

from agentctl.config import Config
from agentctl.contract import load_contracts
from agentctl.contract_cache import ContractCache, cache_path_for

if TYPE_CHECKING:
    from cli_helpers import Cli


def private_cache(tmp_path: Path) -> Path:
    """A cache file in a private folder, as agentctl.user_cache makes it."""
    return tmp_path / "cache" / "agentctl" / "contracts-test.json"


def load(folder: Path, cache: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("today", TODAY)
    return load_contracts([folder], cache_file=cache, **kwargs)


def forge(cache: Path, purpose: str) -> None:
    """Rewrite every cached document's purpose: a result that shows it came
    from the cache, not from validating the file."""
    stored = json.loads(cache.read_text("utf-8"))
    for entry in stored["files"].values():
        entry["document"]["agent"]["purpose"] = purpose
    cache.write_text(json.dumps(stored), "utf-8")


def test_a_cached_load_gives_what_validating_gives(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    write_contract(folder, "beta-agent", aws=s3_read("bucket-b"), mode="approval_required")
    write_contract(folder, "old-agent", aws=s3_read("bucket-c"), expiry=TODAY)  # expired today
    cache = private_cache(tmp_path)

    fresh = load_contracts([folder], today=TODAY)
    first = load(folder, cache)
    assert cache.exists() and oct(cache.stat().st_mode & 0o777) == "0o600"
    again = load(folder, cache)
    for report in (first, again):
        assert report.contracts == fresh.contracts
        assert report.expired == fresh.expired
        assert [c.digest for c in report.contracts] == [c.digest for c in fresh.contracts]
        assert report.problems == fresh.problems
    # The cache is what the second load used.
    forge(cache, "from the cache")
    assert {c.purpose for c in load(folder, cache).contracts} == {"from the cache"}


def test_any_change_of_bytes_day_or_settings_validates_again(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    path = write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    cache = private_cache(tmp_path)
    load(folder, cache)
    forge(cache, "from the cache")

    assert load(folder, cache, today=TODAY + timedelta(days=1)).contracts[0].purpose == "Test agent"
    forge(cache, "from the cache")
    assert load(folder, cache, max_lifetime_days=200).contracts[0].purpose == "Test agent"
    forge(cache, "from the cache")
    other = Config(max_lifetime_days=100)
    assert load(folder, cache, config=other).contracts[0].purpose == "Test agent"
    forge(cache, "from the cache")
    path.write_text(path.read_text("utf-8") + "\n", "utf-8")  # one byte more
    assert load(folder, cache).contracts[0].purpose == "Test agent"


def test_files_with_problems_are_never_cached_and_always_reported(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    write_contract(folder, "alpha-agent", aws=[{"actions": ["s3:*"], "resources": ["*"]}])
    cache = private_cache(tmp_path)
    first = load(folder, cache)
    assert first.problems  # the wildcard is reported
    assert load(folder, cache).problems == first.problems
    assert not cache.exists() or json.loads(cache.read_text("utf-8"))["files"] == {}


def test_names_are_checked_across_files_also_when_cached(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    cache = private_cache(tmp_path)
    load(folder, cache)
    copy = folder / "copy.yaml"
    copy.write_bytes((folder / "alpha-agent.yaml").read_bytes())
    report = load(folder, cache)
    assert {p.code for p in report.blocking} == {"duplicate-name"}


def test_a_file_swapped_for_a_link_outside_is_refused_though_its_bytes_are_cached(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "contracts"
    path = write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    cache = private_cache(tmp_path)
    load(folder, cache)
    outside = tmp_path / "elsewhere.yaml"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    os.symlink(outside, path)
    report = load(folder, cache)
    assert not report.contracts
    assert [p.code for p in report.problems] == ["outside-folder"]


def test_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    cache = private_cache(tmp_path)
    load(folder, cache)
    stored = json.loads(cache.read_text("utf-8"))
    for entry in stored["files"].values():
        entry["document"] = {"agent": "not a mapping"}
    cache.write_text(json.dumps(stored), "utf-8")
    assert load(folder, cache).contracts[0].name == "alpha-agent"
    cache.write_text("{not json", "utf-8")
    assert load(folder, cache).contracts[0].name == "alpha-agent"


def test_the_cache_lives_in_the_users_cache_folder_one_per_sqlite_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    state = tmp_path / "ci" / "state.db"
    state.parent.mkdir()
    found = cache_path_for(f"sqlite:///{state}")
    assert found is not None
    assert found.parent == tmp_path / "cache" / "agentctl"
    assert found.name.startswith("contracts-") and found.suffix == ".json"
    # Never beside the state (agentctl.yaml, which a pull request may change,
    # says where that is), and one file per state.
    other = tmp_path / "other" / "state.db"
    other.parent.mkdir()
    assert cache_path_for(f"sqlite:///{other}") not in (found, None)
    # The same state named through a relative path or a link is the same state.
    monkeypatch.chdir(tmp_path)
    assert cache_path_for("sqlite:///ci/state.db") == found
    (tmp_path / "linked").symlink_to(tmp_path / "ci")
    assert cache_path_for(f"sqlite:///{tmp_path / 'linked' / 'state.db'}") == found
    # A relative XDG_CACHE_HOME is ignored (XDG Base Directory spec): a
    # checkout could otherwise be made the cache folder.
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    relative = cache_path_for(f"sqlite:///{state}")
    assert relative is not None
    assert relative.parent == tmp_path / "home" / ".cache" / "agentctl"
    assert cache_path_for("postgresql://user@localhost/agentctl") is None
    assert cache_path_for(f"sqlite:///{tmp_path / 'missing-folder' / 'state.db'}") is None


def test_a_cache_in_a_folder_others_may_write_is_ignored(tmp_path: Path) -> None:
    """Another user who may write the cache folder could swap in a file of
    their own at any moment: nothing in such a folder is read or written."""
    folder = tmp_path / "contracts"
    write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    cache = private_cache(tmp_path)
    load(folder, cache)
    forge(cache, "forged by another user")
    cache.parent.chmod(0o777)
    assert {c.purpose for c in load(folder, cache).contracts} == {"Test agent"}
    assert "forged by another user" in cache.read_text("utf-8")  # not rewritten either
    cache.parent.chmod(0o700)
    assert {c.purpose for c in load(folder, cache).contracts} == {"forged by another user"}


def test_a_cache_this_user_did_not_write_privately_is_ignored_and_replaced(
    tmp_path: Path,
) -> None:
    """A cache file that is not this user's private file (git checks a pull
    request's files out 0644), or a link to one, could map a harmless file to
    any document: it is not read, and apply writes its own."""
    folder = tmp_path / "contracts"
    write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    cache = private_cache(tmp_path)
    load(folder, cache)
    forge(cache, "forged by a pull request")
    cache.chmod(0o644)
    assert {c.purpose for c in load(folder, cache).contracts} != {"forged by a pull request"}
    assert oct(cache.stat().st_mode & 0o777) == "0o600"  # replaced by this run's own
    assert "forged" not in cache.read_text("utf-8")

    elsewhere = tmp_path / "planted.json"
    forge(cache, "forged by a pull request")
    os.replace(cache, elsewhere)
    cache.symlink_to(elsewhere)
    assert {c.purpose for c in load(folder, cache).contracts} != {"forged by a pull request"}


def test_another_jsonschema_validates_again(tmp_path: Path) -> None:
    # contract.py checks every file with jsonschema: a verdict of another
    # jsonschema (an upgrade that judges a pattern differently) is not reused.
    import jsonschema.validators

    folder = tmp_path / "contracts"
    write_contract(folder, "alpha-agent", aws=s3_read("bucket-a"))
    cache = private_cache(tmp_path)
    load(folder, cache)
    forge(cache, "from the cache")
    assert load(folder, cache).contracts[0].purpose == "from the cache"
    code = Path(jsonschema.validators.__file__)
    before = code.stat()
    try:
        os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        assert load(folder, cache).contracts[0].purpose == "Test agent"
    finally:
        os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("planted_at", ["beside the state", "in the checkout"])
def test_a_planted_cache_cannot_make_an_invalid_contract_pass_plan_or_apply(
    cli: Cli, planted_at: str
) -> None:
    """A pull request's agentctl.yaml may point the state into the checkout
    (state: sqlite:///./state.db) and the same pull request may add any file
    there, private to the CI runner's user once it is checked out and
    chmod-ed by a build step. The strongest forgery: a cache in exactly the
    shape agentctl writes, with this run's context, that maps the bytes of an
    invalid contract (an execution mode that does not exist) to a clean document. agentctl never
    reads a cache beside the state or in the checkout, so the contract is
    validated and refused, and nothing is created."""
    path = cli.write("alpha-agent")
    assert cli("plan", cli.contracts).code in (0, 2)
    genuine = cache_path_for(cli.state_url)
    assert genuine is not None and genuine.is_file()
    stored = json.loads(genuine.read_text("utf-8"))
    (clean_entry,) = stored["files"].values()

    path.write_text(
        path.read_text("utf-8").replace("execution_mode: autonomous", "execution_mode: yolo"),
        "utf-8",
    )
    key = ContractCache._key(str(path), path.read_bytes())
    stored["files"] = {key: clean_entry}
    target = cli.state_path.parent if planted_at == "beside the state" else cli.contracts
    for name in ("state.db.validated.json", genuine.name):
        planted = target / name
        planted.write_text(json.dumps(stored), "utf-8")
        planted.chmod(0o600)

    for command in (["plan", cli.contracts], ["apply", cli.contracts, "--yes"]):
        result = cli(*command)
        assert result.code == 1, result
        assert "contract error" in result.err, result
    assert cli.roles() == []
