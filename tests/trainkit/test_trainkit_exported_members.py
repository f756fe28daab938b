"""trainkit's public surface is exactly these names, and it imports only the standard library."""

import subprocess
import sys

import trainkit


def test_exported_members_are_sorted_and_complete() -> None:
    expected = [
        "Job",
        "OutputWriter",
        "Round",
        "TrainkitError",
        "iter_dicom_files",
        "job",
        "suppress_small_count",
        "suppress_small_counts",
    ]
    assert trainkit.__all__ == expected
    assert sorted(trainkit.__all__) == trainkit.__all__
    public = {name for name in dir(trainkit) if not name.startswith("_")}
    # submodules (numpy, torch) once imported
    assert public - set(expected) <= {"annotations", "compression", "fl", "privacy"}


def test_import_trainkit_loads_no_third_party_module() -> None:
    code = (
        "import sys, trainkit\n"
        "bad = [m for m in ('numpy', 'pydicom', 'protocol', 'pydantic', 'station', 'hub') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    actual = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert actual.stdout.strip() == ""
