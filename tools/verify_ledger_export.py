#!/usr/bin/env python3
"""Verify a Signoff ledger export offline: needs only Python and the `cryptography` package.

    python tools/verify_ledger_export.py ledger.jsonl [--public-key BASE64]

Pass --public-key (repeatable) with keys obtained independently of the export for a check that
does not trust the keys embedded in the file.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from governance import ledger_format


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("--public-key", action="append", default=[])
    args = parser.parse_args()
    with open(args.export) as handle:
        header = json.loads(handle.readline())
        encoded = args.public_key or list(header["public_keys"].values())
        keys = {ledger_format.key_id(k): k for k in map(ledger_format.load_public_key, encoded)}
        count = 0
        for result in ledger_format.verify_entries(map(json.loads, handle), keys):
            if isinstance(result, ledger_format.Problem):
                print(f"FAILED at {result} ({count} entries verified before it)")
                return 1
            count += 1
    print(f"OK: {count} entries verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
