"""Text both databases can hold.

PostgreSQL's text and jsonb reject NUL (``\\u0000``); neither database can
encode a lone surrogate (``\\ud800``) as UTF-8, and SQLite stores one only to
fail every later read that encodes it. Text from agents and users passes
through here where it enters, so nothing unstorable reaches a row.
"""

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
# NUL, and surrogates (valid UTF-8 cannot encode any: a str holding one came from
# bad bytes decoded with surrogateescape, or from an escaped JSON "\ud800").
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> tuple[str, int]:
    """``text`` with NUL and surrogates replaced by U+FFFD, and how many were replaced."""
    return _UNSTORABLE.subn(REPLACEMENT, text)


def storable_json(value: Any) -> tuple[Any, int]:
    """A copy of a JSON value with every string (keys included) made storable, and how many characters changed.

    Containers are rebuilt only where something changed; values that are not
    str, list or dict are returned as they are.
    """
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, list):
        items, changed = [], 0
        for item in value:
            clean, n = storable_json(item)
            items.append(clean)
            changed += n
        return (items if changed else value), changed
    if isinstance(value, dict):
        pairs, changed = {}, 0
        for key, item in value.items():
            clean_key, n_key = storable_text(key) if isinstance(key, str) else (key, 0)
            clean, n = storable_json(item)
            pairs[clean_key] = clean
            changed += n_key + n
        return (pairs if changed else value), changed
    return value, 0


# How a NUL or a surrogate looks in JSON text written with ensure_ascii (Django's default).
_ESCAPED_UNSTORABLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


class StorableJSONDecoder(json.JSONDecoder):
    """Reads JSON columns so that what comes out is always storable (and so renderable) text.

    Rows written before text was checked where it enters, or by a writer that
    went around the services, may hold an escaped lone surrogate (SQLite keeps
    one in JSON text): every page, the admin's included, would fail to encode
    it. Only text holding such an escape is walked; a valid surrogate pair
    (an emoji) decodes to one character and is left as it is.
    """

    def decode(self, s, *args, **kwargs):
        value = super().decode(s, *args, **kwargs)
        return storable_json(value)[0] if _ESCAPED_UNSTORABLE.search(s) else value
