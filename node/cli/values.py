"""What a person may type for an id or a choice, as argparse types and choices.

An id that is not one is refused by argparse in words (``argument --need: not an event id:
bogus …``) before anything is signed or sent, instead of the body schema's regex. Choices come
from ``protocol.kinds``, so ``--help`` and the error list the allowed values.

Categories: on the wire a category is any short lower-case word (a newer node's category
must not make this one drop the event, D31); here a person picks one of the categories this
node knows, ``other`` included. Events of other nodes with newer categories are still
accepted, and shown as ``other`` (``shown_category``).

    >>> event_id("A" * 43) == "A" * 43
    True
"""

from __future__ import annotations

import argparse
from typing import get_args

from protocol.kinds import KNOWN_CATEGORIES, Urgency

__all__ = ["CATEGORIES", "CATEGORY_HELP", "URGENCIES", "event_id"]

#: The categories a person may type (the node's known ones).
CATEGORIES: tuple[str, ...] = KNOWN_CATEGORIES
#: How urgent a need is, least first.
URGENCIES: tuple[str, ...] = get_args(Urgency)
#: The ``--help`` text of a ``--category`` option.
CATEGORY_HELP = (
    f"one of: {', '.join(CATEGORIES)} (another pod's newer categories are shown as other)"
)


def _shaped(value: str, what: str) -> str:
    from node.cli.people import is_key

    if not is_key(value):
        raise argparse.ArgumentTypeError(
            f"not {what}: {value} (an id is the 43 characters the node printed for it,"
            " e.g. in `kith needs`)"
        )
    return value


def event_id(value: str) -> str:
    """An argparse type: ``value`` if it has the shape of an event id."""
    return _shaped(value, "an event id")
