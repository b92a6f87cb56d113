"""Browser tests run against the same real install as the process tests: daphne, the
worker cluster and the dispatcher as subprocesses on a fresh database."""

# Re-exported so pytest finds the fixture here, and failing browser tests carry the processes' output too.
from tests.process.conftest import pytest_runtest_makereport, symphony  # noqa: F401
