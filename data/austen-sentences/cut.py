#!/usr/bin/env python3
"""Cuts the committed Jane Austen sentence set from Debian's r-cran-janeaustenr.

    apt-get install r-base-core r-cran-janeaustenr
    python3 data/austen-sentences/cut.py

Exports the six novels with Rscript, joins each novel's paragraphs, drops the
title and chapter headings and the `_` emphasis marks, splits sentences at
. ! or ? followed by a space and a capital or a quote, keeps sentences of 6 to
60 words, and draws, with a fixed seed, 1,000 training and 200 validation
sentences per novel (no sentence in both). Writes train.tsv and valid.tsv as
`label<TAB>text`, the label being the novel's short name.
"""

import os
import random
import re
import subprocess
import tempfile

NOVELS = [
    ("sense-and-sensibility", "sensesensibility"),
    ("pride-and-prejudice", "prideprejudice"),
    ("mansfield-park", "mansfieldpark"),
    ("emma", "emma"),
    ("northanger-abbey", "northangerabbey"),
    ("persuasion", "persuasion"),
]
TRAIN, VALID = 1000, 200
HERE = os.path.dirname(os.path.abspath(__file__))


def export(tmp):
    names = ",".join(f'"{r}"' for _, r in NOVELS)
    script = (f"library(janeaustenr); for (b in c({names})) "
              f"writeLines(get(b), file.path('{tmp}', paste0(b, '.txt')))")
    subprocess.run(["Rscript", "-e", script], check=True)


def sentences(text):
    paragraphs = re.split(r"\n\s*\n", text)
    out = []
    for p in paragraphs:
        p = " ".join(p.split()).replace("_", "")
        if not p or re.fullmatch(r"(CHAPTER|Chapter) [0-9IVXLC]+\.?", p) or p.isupper():
            continue
        for s in re.split(r"(?<=[.!?])[\"']?\s+(?=[A-Z\"'])", p):
            s = s.strip()
            if 6 <= len(s.split()) <= 60 and "\t" not in s:
                out.append(s)
    return out


def main():
    rng = random.Random(2023)
    train, valid = [], []
    with tempfile.TemporaryDirectory() as tmp:
        export(tmp)
        for label, rname in NOVELS:
            with open(os.path.join(tmp, rname + ".txt"), encoding="utf-8") as f:
                pool = sorted(set(sentences(f.read())))
            rng.shuffle(pool)
            train += [(label, s) for s in pool[:TRAIN]]
            valid += [(label, s) for s in pool[TRAIN:TRAIN + VALID]]
    rng.shuffle(train)
    rng.shuffle(valid)
    for name, rows in (("train.tsv", train), ("valid.tsv", valid)):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
            for label, s in rows:
                f.write(f"{label}\t{s}\n")
    print(f"{len(train)} training and {len(valid)} validation sentences")


if __name__ == "__main__":
    main()
