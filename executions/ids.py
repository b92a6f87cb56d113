"""Execution ids that arrive as text (URLs, websocket paths and cursors, the CLI).

A row id is 1 to 2**63 - 1, what a bigint holds on both databases: a larger
number is no row, and asking SQLite for one overflows its integer.
"""

ID_MAX = 2**63 - 1


def is_row_id(value: int) -> bool:
    return 1 <= value <= ID_MAX


class RowIdConverter:
    """``<row_id:name>`` in a URL: only ids a row can have match, so any other number is a 404."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not is_row_id(number):
            raise ValueError(f"{value} is not a row id")  # Django's resolver takes ValueError as no match
        return number

    def to_url(self, value: int) -> str:
        return str(value)
