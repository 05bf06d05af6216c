#!/usr/bin/env python3
"""Merges the std and loom passes of scripts/mutants into one score.

Usage: mutants-summary.py OUT_DIR EQUIVALENT_FILE

OUT_DIR holds std/mutants.out and, if the loom pass ran, loom/mutants.out.
EQUIVALENT_FILE lists survivors judged equivalent to the original code, one
per line as "<mutant name>  # <reason>" (cargo-mutants' name, as in
missed.txt); blank lines and lines starting with '#' are ignored.

Prints, per file and in total: viable mutants, caught (by a failing or
hanging test, in either pass), missed, and how many of the missed are listed
as equivalent or as caught by a checker outside the two passes (a reason
starting with "caught by"); then every survivor not listed. Machine-readable
lines start with "mutants:".
"""

import sys
from collections import defaultdict
from pathlib import Path


def read(outcome_dir: Path, outcome: str) -> list[str]:
    path = outcome_dir / "mutants.out" / f"{outcome}.txt"
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.strip()]


def file_of(name: str) -> str:
    return name.split(":", 1)[0]


def main() -> int:
    out, equivalent_file = Path(sys.argv[1]), Path(sys.argv[2])
    std, loom = out / "std", out / "loom"

    caught_std = read(std, "caught") + read(std, "timeout")
    missed_std = read(std, "missed")
    unviable = read(std, "unviable")
    loom_ran = (loom / "mutants.out").exists()
    if loom_ran:
        caught_loom = read(loom, "caught") + read(loom, "timeout")
        missed = read(loom, "missed")
        # A survivor the loom pass never reported (it did not build under
        # loom, say) stays missed.
        reported = set(caught_loom) | set(missed) | set(read(loom, "unviable"))
        missed += [name for name in missed_std if name not in reported]
    else:
        caught_loom = []
        missed = missed_std

    equivalent = {}
    if equivalent_file.exists():
        for line in equivalent_file.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name, _, reason = line.partition("  # ")
            equivalent[name.strip()] = reason.strip()

    # A listed reason starting with "caught by" names a checker outside
    # scripts/mutants (Miri's leak check, say): such a mutant is not
    # equivalent, and counts as caught in the adjusted score.
    elsewhere = {name for name, reason in equivalent.items() if reason.startswith("caught by")}

    per_file = defaultdict(lambda: defaultdict(int))
    for name in caught_std:
        per_file[file_of(name)]["std"] += 1
    for name in caught_loom:
        per_file[file_of(name)]["loom"] += 1
    for name in missed:
        per_file[file_of(name)]["missed"] += 1
        if name in elsewhere:
            per_file[file_of(name)]["elsewhere"] += 1
        elif name in equivalent:
            per_file[file_of(name)]["equivalent"] += 1
    for name in unviable:
        per_file[file_of(name)]["unviable"] += 1

    def line(label: str, counts) -> str:
        caught = counts["std"] + counts["loom"]
        viable = caught + counts["missed"]
        score = 100.0 * caught / viable if viable else 100.0
        not_equivalent = viable - counts["equivalent"]
        adjusted = (
            100.0 * (caught + counts["elsewhere"]) / not_equivalent if not_equivalent else 100.0
        )
        return (
            f"mutants: {label} {viable} viable, {caught} caught "
            f"({counts['std']} by std, {counts['loom']} more by loom), "
            f"{counts['missed']} missed ({counts['equivalent']} equivalent, "
            f"{counts['elsewhere']} caught by another checker), "
            f"{counts['unviable']} unviable; score {score:.1f}%, "
            f"{adjusted:.1f}% of non-equivalent caught by some checker"
        )

    total = defaultdict(int)
    for path in sorted(per_file):
        print(line(path, per_file[path]))
        for key, value in per_file[path].items():
            total[key] += value
    print(line("total", total))
    print(f"mutants: loom pass {'ran' if loom_ran else 'skipped'}")

    unexplained = [name for name in missed if name not in equivalent]
    if unexplained:
        print(f"\n{len(unexplained)} survivors not listed as equivalent:")
        for name in sorted(unexplained):
            print(f"  {name}")
    stale = [name for name in equivalent if name not in missed]
    if stale and loom_ran:
        print(f"\n{len(stale)} listed as equivalent but not missed this run "
              "(caught now, or renamed):")
        for name in sorted(stale):
            print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
