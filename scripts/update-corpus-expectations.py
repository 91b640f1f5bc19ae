#!/usr/bin/env python3
"""Bring tests/corpus-expectations.tsv up to date with the linter's findings
on ../shared/corpus: rows of findings that are gone are dropped, verdicts
and notes of the others kept, and new findings added with the verdict `?`,
which tests/corpus.rs refuses until a person has reviewed the row and
written TP, FP or debatable.

    cargo build --release && python3 scripts/update-corpus-expectations.py

INFERGATE names another binary (a debug build: target/debug/infergate).
"""
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
TSV = ROOT / "tests" / "corpus-expectations.tsv"
PREFIX = "../shared/corpus/"


def main():
    lines = TSV.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    reviewed = {}
    for line in lines[len(header) + 1:]:
        columns = line.split("\t")
        reviewed[tuple(columns[:4])] = columns[4:]
    report = subprocess.run(
        [os.environ.get("INFERGATE", str(ROOT / "target" / "release" / "infergate")), "lint", "--format", "json", "-v", PREFIX],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout
    rows = []
    for finding in json.loads(report)["findings"]:
        if finding.get("suppressed"):
            continue
        key = (finding["file"].removeprefix(PREFIX), finding["rule"],
               str(finding["line"]), finding["severity"])
        rows.append(list(key) + reviewed.get(key, ["?", finding["message"]]))
    rows.sort()
    with TSV.open("w") as out:
        out.write("\n".join(header) + "\n")
        out.write("file\trule\tline\tseverity\tverdict\tnote\n")
        for row in rows:
            out.write("\t".join(row) + "\n")
    new = sum(1 for row in rows if row[4] == "?")
    print(f"{TSV.relative_to(ROOT)}: {len(rows)} rows, {new} to review")


if __name__ == "__main__":
    main()
