"""The fallback audit journal: a local, append-only JSON Lines file for the
events a state store could not take (a kill during a database outage).

Apart from :mod:`agentctl.audit` (verification, sealing, export, the journal's
import into the store), which every command that builds an Engine would
otherwise import only to hand it the journal's path: `credentials` and `exec`
on a runtime host, `kill` in an incident.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import IO

from agentctl.clock import Clock, system_clock
from agentctl.errors import StateError
from agentctl.secrets import check_no_secrets
from agentctl.state.records import GENESIS_HASH, AuditDraft, AuditEvent


def read_jsonl(lines: Iterable[str]) -> tuple[list[AuditEvent], list[str]]:
    """Parse exported/journaled events; returns the events and a problem per bad line."""
    events: list[AuditEvent] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            events.append(AuditEvent.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            kind = "incomplete (written during a crash?)" if not line.endswith("\n") else "invalid"
            problems.append(f"line {number} is {kind} and was skipped")
    return events, problems


class AuditJournal:
    """A local, append-only JSON Lines file (0600) for events the store could not take.

    Each line is a full :class:`AuditEvent` with a local hash chain, so an
    edited journal is detected at import. Appends and imports hold an
    exclusive ``flock`` on the file: concurrent agentctl processes on the host
    neither interleave lines nor lose events to an import's truncation.
    """

    def __init__(self, path: Path | str, *, clock: Clock = system_clock) -> None:
        self.path = Path(path).expanduser()
        self._clock = clock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StateError(
                f"cannot open the audit journal {self.path}: {exc.strerror}",
                hint="make its directory writable, or set 'journal:' in agentctl.yaml",
            ) from None
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield handle  # closing the file releases the lock

    def append(
        self, draft: AuditDraft, *, operator: str, time: datetime | None = None
    ) -> AuditEvent:
        """Append ``draft``, recorded for ``operator``, to the journal's local chain."""
        event = draft.event(operator=operator, id=uuid.uuid4().hex, time=time or self._clock())
        check_no_secrets(event.hashed_fields(), "audit event")
        with self._locked() as handle:
            handle.seek(0)
            existing, _ = read_jsonl(handle)
            last = existing[-1] if existing else None
            event = replace(
                event,
                seq=last.seq + 1 if last else 1,
                prev_hash=last.hash if last else GENESIS_HASH,
            )
            event = replace(event, hash=event.compute_hash())
            line = json.dumps(event.as_dict(), sort_keys=True, ensure_ascii=False) + "\n"
            size = os.fstat(handle.fileno()).st_size
            if size and os.pread(handle.fileno(), 1, size - 1) != b"\n":
                line = "\n" + line  # a crash cut the last line short: do not glue onto it
            # One write of a whole line on an O_APPEND descriptor, then fsync:
            # the event is durable before the caller reports the kill done.
            data = line.encode("utf-8")
            try:
                written = os.write(handle.fileno(), data)  # unbuffered: nothing left to flush
                if written != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(handle.fileno())
            except OSError as exc:
                # A full disk wrote part of the line, or none: cut back to
                # what was there, so the journal holds whole events only.
                with contextlib.suppress(OSError):
                    os.ftruncate(handle.fileno(), size)
                raise StateError(
                    f"cannot write the audit journal {self.path}: {exc.strerror}",
                    hint=f"free space on the filesystem holding {self.path.parent} "
                    f"(df -h {self.path.parent}), or set 'journal:' in agentctl.yaml to "
                    "a file elsewhere",
                ) from None
        return event

    def events(self) -> list[AuditEvent]:
        if not self.path.exists():
            return []
        with self._locked() as handle:
            handle.seek(0)
            events, _ = read_jsonl(handle)
        return events
