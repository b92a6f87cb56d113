"""The execution list's text search and its counts at a million rows (see ``executions.search``).

SQLite: an FTS5 table of trigrams, one row per execution (rowid = its id) with
its task's name, description and input and its own error, kept by triggers on
both tables, and filled here from the rows already stored. PostgreSQL: trigram
indexes for the input and the error beside 0006's name and description.

Both: an index on (submitter, state, id) so that a plain user's per-state counts
read only that user's rows in that state, and one on the creation time, which
turns the list's date range into an id range.
"""

from django.db import migrations, models

# Input and error are indexed up to SEARCHED_CHARS (executions.search): a trigram index of a
# megabyte input took 0.7 s inside the submit, holding SQLite's write lock.
SEARCHED_CHARS = 4000
BODY = (
    "{task}.name || char(10) || {task}.description || char(10) || substr({task}.input_data, 1, %d)"
    " || char(10) || substr(coalesce({execution}.error, ''), 1, %d)" % (SEARCHED_CHARS, SEARCHED_CHARS)
)

SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE execution_search USING fts5(body, tokenize='trigram')",
    f"""CREATE TRIGGER execution_search_insert AFTER INSERT ON executions_execution BEGIN
        INSERT INTO execution_search(rowid, body)
        SELECT NEW.id, {BODY.format(task="t", execution="NEW")} FROM executions_task t WHERE t.id = NEW.task_id;
    END""",
    f"""CREATE TRIGGER execution_search_update AFTER UPDATE OF error, task_id ON executions_execution
    WHEN OLD.error IS NOT NEW.error OR OLD.task_id IS NOT NEW.task_id BEGIN
        DELETE FROM execution_search WHERE rowid = OLD.id;
        INSERT INTO execution_search(rowid, body)
        SELECT NEW.id, {BODY.format(task="t", execution="NEW")} FROM executions_task t WHERE t.id = NEW.task_id;
    END""",
    """CREATE TRIGGER execution_search_delete AFTER DELETE ON executions_execution BEGIN
        DELETE FROM execution_search WHERE rowid = OLD.id;
    END""",
    f"""CREATE TRIGGER execution_search_task AFTER UPDATE OF name, description, input_data ON executions_task
    WHEN OLD.name IS NOT NEW.name OR OLD.description IS NOT NEW.description OR OLD.input_data IS NOT NEW.input_data
    BEGIN
        DELETE FROM execution_search WHERE rowid IN (SELECT id FROM executions_execution WHERE task_id = NEW.id);
        INSERT INTO execution_search(rowid, body)
        SELECT e.id, {BODY.format(task="NEW", execution="e")} FROM executions_execution e WHERE e.task_id = NEW.id;
    END""",
    f"""INSERT INTO execution_search(rowid, body)
        SELECT e.id, {BODY.format(task="t", execution="e")}
        FROM executions_execution e JOIN executions_task t ON t.id = e.task_id""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS execution_search_insert",
    "DROP TRIGGER IF EXISTS execution_search_update",
    "DROP TRIGGER IF EXISTS execution_search_delete",
    "DROP TRIGGER IF EXISTS execution_search_task",
    "DROP TABLE IF EXISTS execution_search",
]
POSTGRESQL_INDEXES = {
    "task_input_trgm": ("executions_task", f"left(input_data::text, {SEARCHED_CHARS})"),
    "execution_error_trgm": ("executions_execution", f"left(error::text, {SEARCHED_CHARS})"),
}


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, (table, column) in POSTGRESQL_INDEXES.items():
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (UPPER({column}) gin_trgm_ops)"
            )


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    elif vendor == "postgresql":
        for name in POSTGRESQL_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("executions", "0007_overview_rollup_and_workers")]

    operations = [
        migrations.RunPython(create, drop),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(fields=["submitted_by", "state", "-id"], name="execution_submitter_state"),
        ),
        migrations.AddIndex(
            model_name="execution", index=models.Index(fields=["created_at"], name="execution_created")
        ),
    ]
