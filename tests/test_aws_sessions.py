"""agentctl.aws_sessions: boto3 sessions of one process share botocore's data
loader (static service data only), and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentctl.aws_sessions import hand_back, new_session


@pytest.fixture
def aws_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file with two profiles holding different keys and regions."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    config = tmp_path / "config"
    config.write_text(
        "[profile one]\nregion = eu-west-1\naws_access_key_id = AKIAONE\n"
        "aws_secret_access_key = one-secret\n"
        "[profile two]\nregion = us-west-2\naws_access_key_id = AKIATWO\n"
        "aws_secret_access_key = two-secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return config


def _loader(session: object) -> object:
    return session._session.get_component("data_loader")  # type: ignore[attr-defined]


def test_sessions_share_one_loader_and_its_service_listing(aws_files: Path) -> None:
    first = new_session(profile_name="one")
    first.client("sts")  # loads the service listing and the STS model once
    loader = _loader(first)
    listings_before = dict(loader._cache)  # type: ignore[attr-defined]
    second = new_session(profile_name="two")
    assert _loader(second) is loader
    second.client("sts")
    # The second client was built from the cached listing and model: no new entries.
    assert dict(loader._cache).keys() == listings_before.keys()  # type: ignore[attr-defined]


def test_boto3_does_not_grow_the_shared_search_path(aws_files: Path) -> None:
    paths = list(_loader(new_session()).search_paths)
    for _ in range(5):
        new_session(profile_name="one")
    assert _loader(new_session()).search_paths == paths
    assert len(set(paths)) == len(paths)


def test_credentials_profile_and_region_stay_per_session(aws_files: Path) -> None:
    one = new_session(profile_name="one")
    two = new_session(profile_name="two", region_name="ap-south-1")
    assert one.get_credentials().access_key == "AKIAONE"
    assert two.get_credentials().access_key == "AKIATWO"
    assert one.region_name == "eu-west-1"
    assert two.region_name == "ap-south-1"
    assert one.profile_name == "one"


def test_an_unknown_profile_fails_as_boto3_does(aws_files: Path) -> None:
    from botocore.exceptions import ProfileNotFound

    with pytest.raises(ProfileNotFound):
        new_session(profile_name="nobody")


def test_a_different_data_path_gets_its_own_loader(
    aws_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = _loader(new_session())
    extra = tmp_path / "models"
    extra.mkdir()
    monkeypatch.setenv("AWS_DATA_PATH", str(extra))
    custom = _loader(new_session())
    assert custom is not default
    assert str(extra) in custom.search_paths  # type: ignore[attr-defined]


def test_a_session_handed_back_serves_the_next_request_alike_once(aws_files: Path) -> None:
    checked = new_session(profile_name="one")
    hand_back(checked, profile_name="one")
    taken = new_session(profile_name="one")
    assert taken is checked
    assert taken.get_credentials().access_key == "AKIAONE"
    assert new_session(profile_name="one") is not checked  # only once: never two owners


def test_a_session_handed_back_never_serves_another_profile_or_region(aws_files: Path) -> None:
    checked = new_session(profile_name="one")
    hand_back(checked, profile_name="one")
    other = new_session(profile_name="two")
    assert other is not checked and other.get_credentials().access_key == "AKIATWO"
    assert new_session(profile_name="one", region_name="ap-south-1") is not checked
    # Left for the request it was made for (the provider's, after the runtime
    # principal's session), and taken once.
    assert new_session(profile_name="one") is checked
    assert new_session(profile_name="one") is not checked


def test_a_session_handed_back_never_serves_another_environment(
    aws_files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFIRST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    checked = new_session()
    assert checked.get_credentials().access_key == "AKIAFIRST"
    hand_back(checked)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASECOND")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "second-secret")
    after = new_session()
    assert after is not checked and after.get_credentials().access_key == "AKIASECOND"


def test_a_session_handed_back_never_serves_changed_config_files(aws_files: Path) -> None:
    checked = new_session(profile_name="one")
    hand_back(checked, profile_name="one")
    aws_files.write_text(
        "[profile one]\nregion = eu-west-1\naws_access_key_id = AKIAROTATED\n"
        "aws_secret_access_key = rotated-secret\n"
    )
    after = new_session(profile_name="one")
    assert after is not checked and after.get_credentials().access_key == "AKIAROTATED"
