"""Text vectors, computed once: the process's memory, then the ``TextVector`` table, then the model.

``vectors(texts)`` answers with one unit vector per text. A text is embedded only
the first time any process meets it; the vector is stored under the model's name
and the text's SHA-256 and kept in this process's memory (a bounded LRU), so a
routing decision reads the agents' vectors instead of recomputing them, and a
correction or a new example saved by one process is found by every other.
"""

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence

from django.db import DatabaseError, transaction

from routing.embeddings import MODEL_NAME, encoder
from routing.models import TextVector

logger = logging.getLogger(__name__)

MEMORY_LIMIT = 50_000  # vectors kept per process: 384 float32 each, about 80 MB at the limit


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _Memory:
    def __init__(self, limit: int):
        self.limit = limit
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


memory = _Memory(MEMORY_LIMIT)
_pending: dict[str, TextVector] = {}  # vectors the database refused, stored at the next chance
_pending_lock = threading.Lock()
PENDING_LIMIT = 10_000


def vectors(texts: Sequence[str], *, store: bool = True):
    """A (len(texts), dimensions) float32 array: each text's unit vector, embedding only those never seen.

    ``store=False`` (a task's own query) keeps the vector in memory only: queries are
    many and seldom repeated, while profile texts are few and read by every process.
    """
    import numpy as np

    model = encoder()
    keys = [digest(text) for text in texts]
    found = {key: value for key in set(keys) if (value := memory.get(key)) is not None}
    missing = [key for key in dict.fromkeys(keys) if key not in found]
    if missing and store:
        for row in TextVector.objects.filter(model=MODEL_NAME, digest__in=missing).values_list("digest", "vector"):
            found[row[0]] = np.frombuffer(bytes(row[1]), dtype="<f4")
            memory.put(row[0], found[row[0]])
    todo = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
    if todo:
        computed = model.encode(list(todo.values()))
        rows = []
        for key, vector in zip(todo, computed, strict=True):
            found[key] = vector
            memory.put(key, vector)
            rows.append(TextVector(model=MODEL_NAME, digest=key, vector=vector.astype("<f4").tobytes()))
        if store:
            _store(rows)
    out = np.empty((len(texts), model.dimensions), dtype=np.float32)
    for row, key in enumerate(keys):
        out[row] = found[key]
    return out


def _store(rows: list[TextVector]) -> None:
    """Keep new vectors for every process; when the database will not take them now, try again next call.

    Routing runs inside the caller's transaction. On SQLite a transaction that has only
    read cannot start writing while another process writes ("database is locked" at once,
    whatever the busy timeout), and a routing decision must not fail over a cache: the
    write is tried in a savepoint, and on failure the rows wait in ``_pending`` (their
    vectors are in memory meanwhile) for this process's next storing call.
    """
    with _pending_lock:
        rows = [*_pending.values(), *rows]
        _pending.clear()
    try:
        with transaction.atomic():
            TextVector.objects.bulk_create(rows, ignore_conflicts=True)  # another process's same text: same row
    except DatabaseError as exc:
        with _pending_lock:
            _pending.update({row.digest: row for row in rows[-PENDING_LIMIT:]})
        logger.warning("%d text vectors not stored this time, kept for the next try: %s", len(rows), exc)
