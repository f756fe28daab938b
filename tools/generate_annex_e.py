"""Generate ``station/deid/annex_e.json``, DICOM PS3.15 Table E.1-1, from a machine-readable source.

    .venv/bin/python tools/generate_annex_e.py            # rewrite the table
    .venv/bin/python tools/generate_annex_e.py --check    # exit 1 when it differs (the tests run this)

Source: ``confidentiality_profile_attributes.json`` of the PyPI package ``dicom-standard`` 0.1.0
(Innolitics, MIT licence; a dev dependency, installed under ``<venv>/standard/``), which its
authors extracted with their parser from PS3.15 "current" on 2020-04-07, i.e. DICOM edition
2020b. Each row keeps the tag pattern, the attribute name, the Basic Profile action and the
action of every option column.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SOURCE = Path(sys.prefix) / "standard" / "confidentiality_profile_attributes.json"
OUT = Path(__file__).resolve().parents[1] / "station" / "deid" / "annex_e.json"
EDITION = "DICOM PS3.15 2020b, Table E.1-1 (Application Level Confidentiality Profile Attributes)"
SOURCE_NAME = "dicom-standard 0.1.0 (PyPI, Innolitics, MIT), standard/confidentiality_profile_attributes.json"
OPTIONS = (
    "rtnSafePrivOpt",
    "rtnUIDsOpt",
    "rtnDevIdOpt",
    "rtnInstIdOpt",
    "rtnPatCharsOpt",
    "rtnLongFullDatesOpt",
    "rtnLongModifDatesOpt",
    "cleanDescOpt",
    "cleanStructContOpt",
    "cleanGraphOpt",
)


def build(source: Path = SOURCE) -> str:
    """The table as our JSON document (stable order, one row per attribute)."""
    rows = json.loads(source.read_text("utf-8"))
    table = []
    for row in sorted(rows, key=lambda item: item["tag"].upper()):
        entry = {"tag": row["tag"].upper(), "name": row["name"].strip(), "basic": row["basicProfile"]}
        entry.update({option: row[option] for option in OPTIONS if row.get(option)})
        table.append(entry)
    document = {
        "edition": EDITION,
        "source": SOURCE_NAME,
        "generated_by": "tools/generate_annex_e.py",
        "options": list(OPTIONS),
        "attributes": table,
    }
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    """Write (or with ``--check`` compare) the table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    if not SOURCE.is_file():
        print(f"the source {SOURCE} is missing: pip install 'dicom-standard==0.1.0'", file=sys.stderr)
        return 2
    text = build()
    if options.check:
        if not OUT.is_file() or OUT.read_text("utf-8") != text:
            print(f"{OUT} is stale: run tools/generate_annex_e.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
