"""How a fetch outside exec finds its run (agentctl.helper_runs), on a /proc
tree laid out as proc(5) describes it; the real /proc is exercised by
tests/test_credential_process.py (the SDK's process) and tests/test_git_credential.py
(git behind `sh -c`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.errors import UsageError
from agentctl.helper_runs import helper_run


def fake_proc(root: Path, processes: dict[int, tuple[str, int, int]]) -> Path:
    """pid -> (comm, ppid, starttime) as /proc/PID/stat lines."""
    (root / "sys" / "kernel" / "random").mkdir(parents=True)
    (root / "sys" / "kernel" / "random" / "boot_id").write_text("boot-1\n")
    for pid, (comm, ppid, started) in processes.items():
        (root / str(pid)).mkdir()
        rest = " ".join(["S", str(ppid), *["0"] * 17, str(started), "0", "0"])
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {rest}\n")
    return root


def test_the_process_behind_one_shell_is_the_run(tmp_path: Path) -> None:
    # comm may itself hold ") " (proc(5)): parsed from the last ')'.
    proc = fake_proc(
        tmp_path, {300: ("my) tool", 1, 5000), 400: ("sh", 300, 6000), 500: ("svc", 1, 7000)}
    )
    through_shell = helper_run(None, {}, parent_pid=400, proc=proc)
    assert (through_shell.parent_pid, through_shell.parent_command) == (300, "my) tool")
    assert through_shell.run_id_from == "parent process"
    again = helper_run(None, {}, parent_pid=400, proc=proc)
    assert again.run_id == through_shell.run_id and again.run_id is not None
    direct = helper_run(None, {}, parent_pid=500, proc=proc)
    assert direct.parent_command == "svc" and direct.run_id != through_shell.run_id
    # The same pid started later (pid reuse) is another process, another run.
    (proc / "500" / "stat").write_text("500 (svc) S 1 " + "0 " * 17 + "9999 0 0\n")
    assert helper_run(None, {}, parent_pid=500, proc=proc).run_id != direct.run_id


def test_without_proc_or_started_by_init_each_fetch_is_new(tmp_path: Path) -> None:
    missing = helper_run(None, {}, parent_pid=4242, proc=tmp_path / "no-proc")
    assert (missing.run_id, missing.run_id_from, missing.parent_pid) == (None, "new", None)
    proc = fake_proc(tmp_path / "p", {1: ("systemd", 0, 1)})
    assert helper_run(None, {}, parent_pid=1, proc=proc).run_id_from == "new"
    assert missing.audit_detail() == {"run_id_from": "new", "host": missing.host}


def test_explicit_then_environment_then_process(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {300: ("python3", 1, 5000)})
    env = {"AGENTCTL_RUN_ID": "job-1"}
    assert helper_run("svc-a", env, parent_pid=300, proc=proc).run_id == "svc-a"
    assert helper_run(None, env, parent_pid=300, proc=proc).run_id == "job-1"
    assert helper_run(None, {"AGENTCTL_RUN_ID": ""}, parent_pid=300, proc=proc).parent_pid == 300


@pytest.mark.parametrize("bad", ["", "-lead", "has space", "semi;colon", "x" * 65, "ünï"])
def test_a_run_id_is_letters_digits_dot_dash_underscore(bad: str) -> None:
    with pytest.raises(UsageError, match="is not a run id"):
        helper_run(bad, {})
    with pytest.raises(UsageError, match="AGENTCTL_RUN_ID"):
        helper_run(None, {"AGENTCTL_RUN_ID": bad} if bad else {"AGENTCTL_RUN_ID": "a b"})
