"""The one-line message for a name that is not one of the valid ones, with a near miss."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> str:
    """E.g. ``unknown task 'hoper' (did you mean 'hopper'?); valid tasks: hopper, ...``."""
    choices = list(valid)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid {kind}s: {', '.join(choices)}"
