#!/usr/bin/env python3
"""Print the precision table of docs/rules.md from tests/corpus-expectations.tsv:
per rule, the errors and warnings on ../shared/corpus and how many of them
were reviewed as TP, FP and debatable. tests/corpus.rs holds docs/rules.md to
this output.

    python3 scripts/corpus-precision.py
"""
import collections
import pathlib

TSV = pathlib.Path(__file__).resolve().parent.parent / "tests" / "corpus-expectations.tsv"


def table():
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if not line.startswith("#")][1:]
    counts = collections.defaultdict(collections.Counter)
    for row in rows:
        if row[3] in ("error", "warning"):
            counts[row[1]][row[4]] += 1
    lines = [
        "| rule | errors and warnings | TP | FP | debatable | precision |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for rule in sorted(counts):
        count = counts[rule]
        total = sum(count.values())
        lines.append(
            f"| `{rule}` | {total} | {count['TP']} | {count['FP']} | {count['debatable']} | {100 * count['TP'] // total} % |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
