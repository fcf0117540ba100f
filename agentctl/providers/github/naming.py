"""The names of agents' GitHub Apps: ``github.app_name_template`` and GitHub's slugs.

App names are global on github.com (no two Apps, users or organizations share
one) and at most 34 characters, so an App cannot simply be named after its
agent: ``release-agent`` is surely taken. The default template, ``{org}-{name}``,
makes names unique in practice; the slug GitHub derives from the name (and
shows in ``<slug>[bot]``) is computed here too, so the agent <-> App mapping
can be found again from the agent's name alone (e.g. after a state loss).

Pure functions, no I/O: ``agentctl validate`` uses them.
"""

from __future__ import annotations

import re
import string

APP_NAME_MAX = 34
DEFAULT_TEMPLATE = "{org}-{name}"
_PLACEHOLDERS = frozenset({"org", "name"})


def template_problem(template: str) -> str | None:
    """What is wrong with ``template`` (None when usable)."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        return f"github.app_name_template {template!r} is not a template ({exc})"
    unknown = sorted(fields - _PLACEHOLDERS)
    if unknown:
        return (
            f"github.app_name_template {template!r} uses {{{unknown[0]}}}: only {{org}} and "
            "{name} are known"
        )
    if "name" not in fields:
        return (
            f"github.app_name_template {template!r} has no {{name}}: every agent's App would "
            "get the same name"
        )
    return None


def app_name(template: str, organization: str | None, agent: str) -> str:
    """The App name of ``agent``; ``{org}`` is the organization's login, lowercased."""
    return template.format(org=(organization or "").lower(), name=agent)


def app_slug(name: str) -> str:
    """The slug GitHub gives an App named ``name`` (lowercase; runs of anything but
    letters and digits become one hyphen)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def name_problem(template: str, organization: str | None, agent: str) -> str | None:
    """Why ``agent``'s App name is unusable on GitHub (None when it is fine)."""
    problem = template_problem(template)
    if problem:
        return problem
    if organization is None and "{org}" in template:
        return None  # unknown until github.organization is set (registration needs it)
    name = app_name(template, organization, agent)
    if len(name) > APP_NAME_MAX:
        return (
            f"its GitHub App would be named {name!r} ({len(name)} characters, from "
            f"github.app_name_template {template!r}); GitHub allows {APP_NAME_MAX}: shorten "
            "the agent's name, or set github.app_name_template (e.g. '{name}' — but App names "
            "are global on github.com, so a bare agent name is likely taken)"
        )
    return None
