"""The test tree's own rules: pytest imports test files by basename, so basenames are unique."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_file_basenames_are_unique() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))

    assert [name for name, count in names.items() if count > 1] == []
