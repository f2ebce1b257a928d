"""Who a person is on the command line: a key file, a public key, or a display name.

Every option that names a person (``post hours --giver/--receiver``, ``report --about``,
``member block|unblock|remove|list|recover``) reads its value through ``People.key_of``:

- a public key (43 base64url characters) is taken as it is;
- a file is read as a key file, and its public key is used (its seeds never leave it);
- anything else is a display name, looked up as the running node knows it: each member's
  latest ``profile.set`` name (``GET /v1/events``), matched without regard to case, mapped to
  the person (a device's profile names its person, ``GET /v1/members``). Both routes are for
  the pod's members, so a name needs the command's ``--key``.

A name that two people share is not guessed at: the error lists their keys and asks for one.
``--key`` (the key a command signs with) is a key *file* and is not read here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from protocol.kinds import KEY_PATTERN
from protocol.reasons import KithError

__all__ = ["People", "is_key"]

_KEY = re.compile(KEY_PATTERN)

#: Events read per page while collecting profile names.
_PAGE = 500


def is_key(value: str) -> bool:
    """Has ``value`` the shape of a public key (or an event id: the same shape)?

    >>> is_key("A" * 43), is_key("Ada")
    (True, False)
    """
    return bool(_KEY.match(value))


class People:
    """The people of one pod as its running node knows them, read once and only if a name
    is given (a key or a key file needs no lookup)."""

    def __init__(self, client: Any, members: list[dict[str, Any]] | None = None) -> None:
        self.client = client
        self._members = members
        self._names: dict[str, str] | None = None

    def members(self) -> list[dict[str, Any]]:
        """``GET /v1/members``: each person's key, role, status and devices."""
        if self._members is None:
            self._members = self.client.get("/v1/members")
        return self._members

    def names(self) -> dict[str, str]:
        """Each person's display name (their latest ``profile.set`` name, by any of their
        keys), by their primary key."""
        if self._names is None:
            person_of: dict[str, str] = {}
            for m in self.members():
                person_of[m["key"]] = m["key"]
                for device in m.get("devices", []):
                    person_of[device["key"]] = m["key"]
            names: dict[str, str] = {}
            after: int | None = None
            pod = self.client.info()["pod"]
            while True:
                page = self.client.get(
                    "/v1/events", kinds="profile.set", pods=pod, after=after, limit=_PAGE
                )
                for event in page["events"]:  # in commit order: a later profile replaces
                    env = event["envelope"]
                    person = person_of.get(json.loads(env["head"])["author"])
                    body = json.loads(env["body"]) if env.get("body") else {}
                    if person is not None and isinstance(body.get("name"), str):
                        names[person] = body["name"]
                after = page.get("next")
                if after is None:
                    break
            self._names = names
        return self._names

    def name_of(self, key: str) -> str:
        """The display name of ``key``'s person, or the key's first 8 characters."""
        return self.names().get(key) or key[:8]

    def key_of(self, value: str, what: str) -> str:
        """The public key ``value`` means (see the module docstring); a clear error naming
        ``what`` (the option) when it means no one, or more than one person."""
        if is_key(value):
            return value
        path = Path(value)
        if path.is_file():
            from node.datadir import read_key_file

            return read_key_file(path).public
        wanted = value.strip().casefold()
        found = sorted(k for k, name in self.names().items() if name.casefold() == wanted)
        if len(found) == 1:
            return found[0]
        if found:
            raise KithError(
                f"{what} {value!r}: {len(found)} members have that name ({', '.join(found)});"
                " give one of these keys instead"
            )
        raise KithError(
            f"{what} {value!r}: not a key, not a key file, and no member of this pod has that"
            " name (`kith member list` shows the members' keys)"
        )
