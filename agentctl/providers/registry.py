"""The registered providers: one :class:`ProviderSpec` per ``agentctl.providers``
entry point.

agentctl's own providers are entry points of its own distribution, exactly
like a third party's (``pyproject.toml``: ``aws = "agentctl.providers.aws:SPEC"``),
so validation, the schemas and the engine treat every provider alike. On a
name clash agentctl's own distribution wins, so a stale or hostile plug-in can
never shadow the AWS or GitHub provider; between two third-party
distributions, the one whose name sorts first.

Loading a spec imports only its package (cheap by contract: no SDK); the
provider itself is imported by :meth:`ProviderSpec.create` when a command
needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType

from agentctl.errors import ConfigError
from agentctl.providers.base import AnyProvider, AnySpec, ProviderContext, ProviderSpec

ENTRY_POINT_GROUP = "agentctl.providers"
OWN_DISTRIBUTION = "agentctl"


def _distribution(entry: EntryPoint) -> str:
    dist = entry.dist
    return dist.name if dist is not None else ""


def _rank(entry: EntryPoint) -> tuple[bool, str]:
    name = _distribution(entry)
    return (name.lower().replace("_", "-") != OWN_DISTRIBUTION, name.lower())


def _origin(entry: EntryPoint) -> str:
    # For error messages only: a distribution's name is read from its METADATA
    # file (parsed as an email message, ~1 ms each), which a clash (_rank) or a
    # broken plug-in needs, not every start of every command.
    return _distribution(entry) or "an unknown distribution"


def _load(entry: EntryPoint) -> AnySpec:
    try:
        spec = entry.load()
    except Exception as exc:  # a broken plug-in must say which one, not crash
        origin = _origin(entry)
        raise ConfigError(
            f"provider {entry.name!r} ({entry.value} from {origin}) cannot be loaded "
            f"({exc.__class__.__name__})",
            hint=f"reinstall {origin}, or uninstall it",
        ) from None
    if not isinstance(spec, ProviderSpec) or spec.name != entry.name:
        origin = _origin(entry)
        raise ConfigError(
            f"provider {entry.name!r} ({entry.value} from {origin}) is not the ProviderSpec "
            f"of a provider named {entry.name!r}",
            hint=f"report it to the authors of {origin}, or uninstall it",
        )
    return spec


def _chosen() -> dict[str, EntryPoint]:
    """Provider name -> the entry point that wins it, sorted by name."""
    chosen: dict[str, EntryPoint] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        current = chosen.get(entry.name)
        if current is None or _rank(entry) < _rank(current):
            chosen[entry.name] = entry
    return {name: chosen[name] for name in sorted(chosen)}


@dataclass(frozen=True)
class InstalledProviders:
    """Every installed provider (sorted by name): the specs that load, and why
    each of the others does not."""

    specs: Mapping[str, AnySpec]
    broken: Mapping[str, ConfigError]


@cache
def installed_providers() -> InstalledProviders:
    specs: dict[str, AnySpec] = {}
    broken: dict[str, ConfigError] = {}
    for name, entry in _chosen().items():
        try:
            specs[name] = _load(entry)
        except ConfigError as exc:
            broken[name] = exc
    return InstalledProviders(MappingProxyType(specs), MappingProxyType(broken))


def provider_specs() -> Mapping[str, AnySpec]:
    """Provider name -> its spec, for every installed provider (sorted by name).
    A plug-in that cannot be loaded is an error naming it: a command must not
    plan, validate or report without a system that is installed."""
    installed = installed_providers()
    if installed.broken:
        first = next(iter(installed.broken.values()))
        raise ConfigError(first.message, hint=first.hint)
    return installed.specs


def loadable_provider_specs() -> Mapping[str, AnySpec]:
    """Like :func:`provider_specs`, without the plug-ins that cannot be loaded.

    For mounting the providers' sub-commands: one broken plug-in must not take
    ``agentctl github`` out of the CLI (every command that loads providers
    names the broken one through :func:`provider_specs`).
    """
    return installed_providers().specs


def load_providers(
    context: ProviderContext,
    names: Iterable[str] | None = None,
    *,
    tolerate_broken: bool = False,
) -> Mapping[str, AnyProvider]:
    """The providers named (default: every installed one), each constructed the
    first time a command uses it (see :class:`Providers`).

    ``tolerate_broken`` is for kill: a plug-in that cannot be loaded is still
    one of the providers, failing where it is used (that system's part of the
    kill fails, naming the plug-in), so the other systems are still revoked.
    """
    if tolerate_broken:
        installed = installed_providers()
        specs: Mapping[str, AnySpec | ConfigError] = {**installed.specs, **installed.broken}
    else:
        specs = provider_specs()
    wanted = sorted(specs) if names is None else [n for n in names if n in specs]
    return Providers({name: specs[name] for name in wanted}, context)


class Providers(Mapping[str, AnyProvider]):
    """Provider name -> the provider, constructed on first use, then the same object.

    Names, ``in`` and ``len`` need no provider; ``[]``, ``get``, ``values`` and
    ``items`` construct the ones they return. A plan or apply of AWS-only
    contracts so never imports the GitHub and Jira providers (their clients,
    ~18 ms of every apply and no-change apply), while kill, status and
    rotate, which ask every provider, construct them all as before. A provider
    that cannot be constructed raises where it is first used, with the same
    ConfigError as before: the commands that need it fail as they did, the
    others no longer fail for a system they do not touch. Thread-safe: a
    plan's threads ask for providers concurrently and get one object each.
    """

    def __init__(
        self, specs: Mapping[str, AnySpec | ConfigError], context: ProviderContext
    ) -> None:
        # A ConfigError in place of a spec: a plug-in that cannot be loaded
        # (load_providers(tolerate_broken=True)), raised where it is used.
        self._specs = dict(specs)
        self._context = context
        self._made: dict[str, AnyProvider] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> AnyProvider:
        made = self._made.get(name)
        if made is not None:
            return made
        spec = self._specs[name]  # KeyError for a provider not installed, like a dict
        if isinstance(spec, ConfigError):
            raise ConfigError(spec.message, hint=spec.hint)
        with self._lock:
            if name not in self._made:
                self._made[name] = spec.create(self._context)
            return self._made[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Providers({', '.join(self._specs)})"
