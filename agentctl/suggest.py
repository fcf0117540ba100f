"""Did-you-mean: the one way agentctl suggests what a misspelt word meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word``, compared case-insensitively (``Repo:Read``
    still finds ``repo:read``), in its own spelling; None when nothing is close.

    Only the first 100 characters of ``word`` are compared: hostile input must
    not make the comparison slow.
    """
    lowered = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(word[:100].lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[close[0]] if close else None
