"""Tell owners what concerns their agents, through Apprise.

``agentctl expiring --notify`` turns its report into one message per owner
(expired and expiring contracts, credentials due for rotation) and sends it
to the routes agentctl.yaml gives that owner (:class:`~agentctl.config.
NotifySettings`: by address, else by domain, else the default). Apprise speaks e-mail, Slack, Teams, PagerDuty, webhooks and ~100
other services from one URL each, so agentctl keeps no client of its own.

The route URLs carry credentials (SMTP passwords, webhook tokens): they never
reach output, audit or exceptions; a delivery is described by its service
("mailtos", "slack", "json") only. Apprise is imported only here (~0.8 s).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol
from urllib.parse import quote

from agentctl.config import NotifySettings
from agentctl.errors import ConfigError


@dataclass(frozen=True)
class Message:
    owner: str
    title: str
    body: str
    agents: tuple[str, ...]


@dataclass(frozen=True)
class Delivery:
    """What happened to one owner's message."""

    owner: str
    services: tuple[str, ...]  # e.g. ("mailtos", "slack"): never the URLs
    sent: bool
    problem: str | None = None
    agents: tuple[str, ...] = field(default=())
    # Dry run only: the message that would be sent (title, then body).
    preview: str | None = None


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_environment(url: str, where: str) -> str:
    """``${NAME}`` in a route becomes the environment variable NAME (URL-quoted,
    so a password holding ``@`` or ``/`` works): route secrets stay out of
    agentctl.yaml. An unset variable is a ConfigError naming it, not the URL."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(
                f"{where}: a {service_of(url)}:// URL uses ${{{name}}}, which is not set "
                "in the environment",
                hint=f"export {name} for agentctl (in the crontab line or the service's "
                "environment), or write the value into the URL",
            )
        return quote(found, safe="")

    return _ENV_REFERENCE.sub(value, url)


def _route_groups(settings: NotifySettings) -> list[tuple[str, Sequence[str]]]:
    return [
        *((f"notify.owners.{k}", v) for k, v in settings.owners.items()),
        *((f"notify.domains.{k}", v) for k, v in settings.domains.items()),
        ("notify.default", settings.default),
    ]


def routes_for(owner: str, settings: NotifySettings) -> tuple[str, ...]:
    """The owner's Apprise URLs: by address, else by domain, else the default;
    ``{owner}`` and ``${NAME}`` (environment) filled in."""
    domain = owner.rpartition("@")[2].lower()
    by_owner = [
        (f"notify.owners.{k}", v) for k, v in settings.owners.items() if k.lower() == owner.lower()
    ]
    by_domain = [
        (f"notify.domains.{k}", v) for k, v in settings.domains.items() if k.lower() == domain
    ]
    candidates = [*by_owner, *by_domain, ("notify.default", settings.default)]
    where, chosen = next(((w, v) for w, v in candidates if v), ("notify.default", ()))
    return tuple(
        expand_environment(url, where).replace("{owner}", quote(owner, safe="@")) for url in chosen
    )


def service_of(url: str) -> str:
    return url.partition("://")[0].lower() or "?"


class _DueItem(Protocol):  # what messages_for_expiring reads (reports.ExpiringItem)
    @property
    def owner(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def days_left(self) -> int: ...


def messages_for_expiring(items: Iterable[_DueItem], *, days: int, today: str) -> list[Message]:
    """One message per owner, listing what is due for each of their agents."""
    grouped: dict[str, list[_DueItem]] = {}
    for item in items:
        grouped.setdefault(item.owner, []).append(item)
    messages = []
    for owner in sorted(grouped):
        owned = sorted(grouped[owner], key=lambda i: (i.days_left, i.agent))
        lines = [f"- {i.agent}: {i.kind}: {i.detail}" for i in owned]
        count = len(owned)
        messages.append(
            Message(
                owner=owner,
                title=f"agentctl: {count} item{'s' if count != 1 else ''} "
                f"need{'' if count != 1 else 's'} your attention",
                body=(
                    f"As of {today} (looking {days} days ahead), agents you own need "
                    "attention:\n\n" + "\n".join(lines) + "\n\n— agentctl expiring"
                ),
                agents=tuple(sorted({i.agent for i in owned})),
            )
        )
    return messages


def kill_message(agent: str, owner: str, reason: str, *, ok: bool) -> Message:
    outcome = "killed" if ok else "only partly killed (`agentctl kill` again finishes it)"
    return Message(
        owner=owner,
        title=f"agentctl: your agent {agent} was {'killed' if ok else 'partly killed'}",
        body=f"The agent {agent}, which you own, was {outcome}.\nReason: {reason or 'none given'}"
        "\n\n— agentctl kill",
        agents=(agent,),
    )


@dataclass(frozen=True)
class Disabled:
    """One agent ``apply`` disabled because its contract expired."""

    agent: str
    owner: str
    expiry: date | None
    ok: bool  # False: some provider could not be disabled (apply again finishes it)


def expiry_messages(disabled: Iterable[Disabled]) -> list[Message]:
    """One message per owner naming each of their agents ``apply`` disabled at expiry."""
    grouped: dict[str, list[Disabled]] = {}
    for item in disabled:
        grouped.setdefault(item.owner, []).append(item)
    messages = []
    for owner in sorted(grouped):
        items = sorted(grouped[owner], key=lambda d: d.agent)
        lines = [
            f"- {d.agent}: contract expired"
            + (f" on {d.expiry.isoformat()}" if d.expiry else "")
            + (
                "; disabled, it can no longer get credentials"
                if d.ok
                else "; NOT disabled everywhere yet (`agentctl apply` again finishes it)"
            )
            for d in items
        ]
        names = ", ".join(d.agent for d in items)
        partly = any(not d.ok for d in items)
        messages.append(
            Message(
                owner=owner,
                title=f"agentctl: your agent{'s' if len(items) > 1 else ''} {names} "
                f"{'were' if len(items) > 1 else 'was'} {'partly ' if partly else ''}disabled "
                "(contract expired)",
                body="Agents you own were disabled because their contract expired:\n\n"
                + "\n".join(lines)
                + "\n\nTo bring one back, extend `expiry` in its contract and run "
                "`agentctl apply`.\n\n— agentctl apply",
                agents=tuple(d.agent for d in items),
            )
        )
    return messages


def tell_owners(messages: Sequence[Message], settings: NotifySettings) -> tuple[str, ...]:
    """Send ``messages`` and say, one note per owner, whether each was told.
    Never raises for a route problem: telling the owner comes after the real
    work (a kill, a disable), and failing to tell must not undo or hide it."""
    from agentctl.errors import AgentctlError

    if not messages:
        return ()
    try:
        deliveries = send(messages, settings)
    except AgentctlError as exc:
        owners = ", ".join(sorted({m.owner for m in messages}))
        return (f"owner {owners} not told: {exc.message}",)
    return tuple(
        f"owner {d.owner} not told: {d.problem}"
        if d.problem is not None
        else f"owner {d.owner} told via {', '.join(d.services)}"
        + (f" ({', '.join(d.agents)})" if len(messages) > 1 else "")
        for d in deliveries
    )


def check_routes(settings: NotifySettings) -> None:
    """Every configured URL is one Apprise understands (else a ConfigError
    naming the route by owner/domain and service, never the URL)."""
    import apprise

    for where, urls in _route_groups(settings):
        for url in urls:
            filled = expand_environment(url, where).replace("{owner}", "owner@example.com")
            if apprise.Apprise.instantiate(filled) is None:
                raise ConfigError(
                    f"{where}: a {service_of(url)}:// URL that Apprise does not understand",
                    hint="see https://github.com/caronc/apprise/wiki for each service's URL form",
                )


def send(
    messages: Sequence[Message], settings: NotifySettings, *, dry_run: bool = False
) -> list[Delivery]:
    """Send each message to its owner's routes (or, ``dry_run``, only say
    where it would go). An owner with no route is a failed delivery: nobody
    was told."""
    if not messages:
        return []
    check_routes(settings)
    deliveries = []
    for message in messages:
        urls = routes_for(message.owner, settings)
        services = tuple(service_of(u) for u in urls)
        if not urls:
            deliveries.append(
                Delivery(
                    message.owner,
                    (),
                    False,
                    "no route: add the owner or their domain under notify: in agentctl.yaml",
                    message.agents,
                )
            )
            continue
        if dry_run:
            deliveries.append(
                Delivery(
                    message.owner,
                    services,
                    False,
                    None,
                    message.agents,
                    preview=f"{message.title}\n\n{message.body}",
                )
            )
            continue
        failed = [
            service_of(url) for url in urls if not _send_one(url, message, settings.timeout_seconds)
        ]
        deliveries.append(
            Delivery(
                message.owner,
                services,
                not failed,
                f"not delivered through {', '.join(failed)}" if failed else None,
                message.agents,
            )
        )
    return deliveries


def _send_one(url: str, message: Message, timeout: float) -> bool:
    import apprise

    notifier = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return False
    # A dead SMTP relay or webhook must not hold a cron run for minutes.
    for attribute in ("socket_connect_timeout", "socket_read_timeout"):
        if hasattr(plugin, attribute):
            setattr(plugin, attribute, timeout)
    notifier.add(plugin)
    # Apprise logs failures (with the URL's host, sometimes more) on its own
    # logger; agentctl reports the failure itself, without the URL.
    with _quiet_apprise():
        return bool(notifier.notify(title=message.title, body=message.body))


class _quiet_apprise:
    def __enter__(self) -> None:
        self._logger = logging.getLogger("apprise")
        self._level = self._logger.level
        self._logger.setLevel(logging.CRITICAL + 1)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
