"""Trigram indexes for the executions' text search (``q=``) on PostgreSQL.

``name__icontains`` is ``UPPER(name) LIKE UPPER('%word%')``: no b-tree serves a
pattern that starts with a wildcard, so over 1,000,000 tasks the search read
every row (1.3 to 2 s in bench/api_list.py). A GIN index of trigrams serves it
(about 0.1 s). ``pg_trgm`` is a trusted extension since PostgreSQL 13: the
database's owner may create it. SQLite has no such index; the migration does
nothing there.
"""

from django.db import migrations

INDEXES = {"task_name_trgm": "name", "task_description_trgm": "description"}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON executions_task USING gin (UPPER({column}) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("executions", "0005_heartbeats")]

    operations = [migrations.RunPython(create, drop)]
