"""The typed table of providers: built-ins plus ``agentctl.providers`` entry points.

Entries are import strings resolved on first use, so listing providers (as
``agentctl validate`` does) never imports boto3 or githubkit.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points

from agentctl.errors import ConfigError
from agentctl.providers.base import Provider, ProviderContext

ProviderFactory = Callable[[ProviderContext], Provider]

ENTRY_POINT_GROUP = "agentctl.providers"

BUILTIN_PROVIDERS: Mapping[str, str] = {
    "aws": "agentctl.providers.aws.lifecycle:AwsProvider",
    "github": "agentctl.providers.github.lifecycle:GitHubProvider",
}


def available_providers() -> dict[str, str]:
    """Provider name -> "module:attr" for built-ins and installed plug-ins."""
    table = dict(BUILTIN_PROVIDERS)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        # Built-ins are also declared as entry points; the built-in wins so a
        # stale plug-in can never shadow the AWS or GitHub provider.
        table.setdefault(entry.name, entry.value)
    return table


def _resolve(target: str) -> ProviderFactory:
    module_name, _, attr = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"provider {target!r} cannot be loaded ({exc.__class__.__name__})",
            hint="reinstall the package that provides it, or uninstall it",
        ) from None
    return factory


def load_providers(
    context: ProviderContext, names: Iterable[str] | None = None
) -> dict[str, Provider]:
    table = available_providers()
    wanted = list(table) if names is None else [n for n in names if n in table]
    return {name: _resolve(table[name])(context) for name in wanted}
