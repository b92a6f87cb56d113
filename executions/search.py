"""Text search over executions: a task's name, description and input, and the execution's error.

What matches is the same on both databases: every execution whose text holds
the words as typed, in any case, as a substring ("port" finds "report"). Input
and error are searched as their stored JSON text, keys and punctuation
included, in their first ``SEARCHED_CHARS`` characters. Neither database scans the table for it:

- PostgreSQL: trigram GIN indexes over ``UPPER(column::text)`` (migrations 0006
  and 0008) serve ``UPPER(text) LIKE UPPER('%words%')``.
- SQLite: an FTS5 table ``execution_search`` with the ``trigram`` tokenizer, one
  row per execution (rowid = execution id) holding its task's text and its error,
  kept by triggers (migration 0008). A phrase query is a substring match over an index.

Both indexes are of trigrams: text shorter than three characters has none and
would be a scan of every row, so a search needs at least ``MIN_CHARS``.

On SQLite a page reads the match set newest first in windows (``newest_matches``):
building the whole set first cost 290 ms for a word in a quarter of 1,000,000
rows, where the newest 2,000 matches come in about 3 ms.

On SQLite, JSON text stores characters outside ASCII as ``\\uXXXX`` escapes, so a
search for "café" finds it in a name but not inside an input; PostgreSQL stores
``jsonb`` and finds both.
"""

from django.db import connections
from django.db.models import Q
from django.db.models.expressions import RawSQL

MIN_CHARS = 3
# Input and error are searched in their first SEARCHED_CHARS characters (as stored JSON); indexing
# all of a megabyte input cost 0.7 s inside its submit. Migration 0008 indexes the same prefix.
SEARCHED_CHARS = 4000


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def text_matches(text: str, *, using: str = "default") -> Q:
    """A filter on executions: those whose task name, description, input or error contain ``text``."""
    if len(text) < MIN_CHARS:
        raise ValueError(f"Search for at least {MIN_CHARS} characters.")
    if connections[using].vendor == "sqlite":
        found = RawSQL("SELECT rowid FROM execution_search WHERE execution_search MATCH %s", [_fts_phrase(text)])
        return Q(id__in=found)
    pattern = _like_pattern(text)
    # One set of ids from both tables' indexes: an OR of the two tables' conditions would be
    # checked row by row along the whole executions table.
    found = RawSQL(
        "SELECT e.id FROM executions_execution e WHERE e.task_id IN ("
        " SELECT t.id FROM executions_task t WHERE UPPER(t.name) LIKE UPPER(%s)"
        f" OR UPPER(t.description) LIKE UPPER(%s) OR UPPER(left(t.input_data::text, {SEARCHED_CHARS})) LIKE UPPER(%s))"
        f" UNION SELECT id FROM executions_execution WHERE UPPER(left(error::text, {SEARCHED_CHARS})) LIKE UPPER(%s)",
        [pattern] * 4,
    )
    return Q(id__in=found)


# How many of the newest matches a page or a count reads at once on SQLite.
SEARCH_WINDOW = 2_000


def newest_matches(text: str, *, before: int | None, using: str = "default") -> tuple[list[int], bool] | None:
    """On SQLite, the ids of the newest ``SEARCH_WINDOW`` executions matching ``text`` below id
    ``before``, newest first, and whether older matches may follow; None elsewhere (PostgreSQL's
    planner walks its trigram index and the executions together)."""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return None
    text_matches(text, using=using)  # the same refusal of short text
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rowid FROM execution_search WHERE execution_search MATCH %s AND rowid < %s"
            " ORDER BY rowid DESC LIMIT %s",
            [_fts_phrase(text), before if before is not None else 2**63 - 1, SEARCH_WINDOW + 1],
        )
        ids = [row[0] for row in cursor.fetchall()]
    return ids[:SEARCH_WINDOW], len(ids) > SEARCH_WINDOW
