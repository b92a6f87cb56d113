"""What every bench over the kept million-row database starts with: its command line, and the
database opened, migrated and filled (or reused) through ``bench_db``."""

import argparse

from bench.bench_db import configure, fill, mark_filled


def parse_args(description: str, results, *, samples: int = 50) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=1_000_000, help="executions to fill (default 1,000,000)")
    parser.add_argument("--samples", type=int, default=samples, help=f"timed requests per figure (default {samples})")
    parser.add_argument("--quick", action="store_true", help="--rows 100000 --samples 20")
    parser.add_argument("--database-url", default="", help="PostgreSQL server: the bench database is kept on it")
    parser.add_argument("--redis-url", default="", help="accepted for bench/suite.py; not used")
    parser.add_argument("--fresh", action="store_true", help="fill again even if a filled database is kept")
    parser.add_argument("--output", default=str(results), help="JSON results")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.samples = 100_000, 20
    return args


def open_kept(args) -> tuple[str, str, float | None]:
    """Django set up on the kept database, migrated, filled unless a filled one is kept:
    (engine label, where it is, the fill's seconds or None when reused)."""
    engine, where, kept = configure(args)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    print(f"{engine}: {where}")
    if kept:
        print(f"  reusing the kept database ({args.rows:,} executions)")
        return engine, where, None
    fill_seconds = fill(args.rows)
    mark_filled(args, where)
    print(f"  filled in {fill_seconds:.0f} s")
    return engine, where, fill_seconds
