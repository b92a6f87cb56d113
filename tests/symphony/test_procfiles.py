"""The Procfile per role runs what the all-in-one Procfile runs, one role each."""

from pathlib import Path

from honcho.environ import parse_procfile

ROOT = Path(__file__).resolve().parents[2]


def roles(name: str) -> dict[str, str]:
    return parse_procfile((ROOT / name).read_text()).processes


def test_each_role_has_a_procfile_of_its_own():
    together = roles("Procfile")

    for role in together:
        alone = roles(f"Procfile.{role}")
        assert list(alone) == [role]
        assert alone[role].split(" -b ")[0] == together[role].split(" -b ")[0]
