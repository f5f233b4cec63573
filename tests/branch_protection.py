#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""branch_protection.py READELF LIB - every object in the archive LIB says,
in its GNU property note, that it is fit for BTI and return-address signing.

The linker keeps a mark only if every object it links carries it, so one
object without it (an assembly file without its .note.gnu.property, say)
takes BTI away from the whole library, and with it the kernel's guarded
pages, silently.  Run for AArch64 builds made with -mbranch-protection.
"""
import subprocess
import sys


def main():
    readelf, lib = sys.argv[1], sys.argv[2]
    out = subprocess.run([readelf, "-n", lib], check=True, capture_output=True,
                         text=True).stdout
    members, current = {}, None
    for line in out.splitlines():
        if line.startswith("File: "):
            current = line[len("File: "):]
            members[current] = ""
        elif current and "AArch64 feature:" in line:
            members[current] = line.split("AArch64 feature:", 1)[1]
    if not members:
        print(f"{lib}: no objects found")
        return 1
    bad = [m for m, f in members.items() if "BTI" not in f or "PAC" not in f]
    for m in bad:
        print(f"{m}: not marked for BTI and PAC ({members[m].strip() or 'no note'})")
    print(f"{len(members) - len(bad)} of {len(members)} objects marked")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
