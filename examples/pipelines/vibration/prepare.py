#!/usr/bin/env python3
"""Split a vibration training table into a training and a holdout table (deterministic).

    python3 prepare.py --in data.csv --train train.csv --holdout holdout.csv [--holdout-share 0.2]

Rows whose label is not one of the four known states (the simulator's "unknown" faults) are
left out of both. Every fifth row (by default) goes to the holdout, so the split is the same for
the same input: the step is cached on its input's content.
"""
import argparse
import csv

N_CLASSES = 4


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--in", dest="src", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--holdout", required=True)
    p.add_argument("--holdout-share", type=float, default=0.2)
    a = p.parse_args()
    every = max(2, round(1 / a.holdout_share))
    with open(a.src, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    known = [r for r in body if r and int(float(r[-1])) < N_CLASSES]
    train = [r for i, r in enumerate(known) if i % every != every - 1]
    holdout = [r for i, r in enumerate(known) if i % every == every - 1]
    for path, part in ((a.train, train), (a.holdout, holdout)):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(part)
    print(f"{len(body)} rows: {len(train)} train, {len(holdout)} holdout, {len(body) - len(known)} unknown left out")


if __name__ == "__main__":
    main()
