"""Tables from ``screen_anomaly.py`` output: AUROC of score candidates.

A candidate is ``member:score`` (one model), or an ensemble written
``+``-joined, e.g. ``d0:iwae10+d1:iwae10+d2:iwae10``; a ``z`` prefix on the
whole spec (``z|d0:iwae10+row:iwae10``) standardises each part by the median
and interquartile range of its held-out rows' scores before averaging
(``r|`` by the mean and standard deviation of the held-out scores).
"""

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def part(res, spec, mode):
    member, score = spec.split(":")
    t = res[f"{member}__{score}_test"].astype(float)
    h = res[f"{member}__{score}_held"].astype(float)
    if mode == "z":
        q1, med, q3 = np.percentile(h, [25, 50, 75])
        return (t - med) / max(q3 - q1, 1e-12)
    if mode == "r":
        return (t - h.mean()) / max(h.std(), 1e-12)
    return t


def candidate(res, cand):
    mode, _, body = cand.rpartition("|")
    parts = body.split("+")
    s = np.mean([part(res, p, mode) for p in parts], axis=0)
    members = {p.split(":")[0] for p in parts}
    cpu = sum(float(res[f"{m}__cpu"]) for m in members)
    return s, cpu


def main(outdir, cands):
    merged = defaultdict(dict)
    for d in outdir.split(","):
        for f in sorted(Path(d).glob("*.npz")):
            merged[f.stem].update(np.load(f))
    rows = []
    for stem, res in sorted(merged.items()):
        coll, ds, seed = stem.split("__")
        y = res["y_test"]
        row = {"coll": coll, "ds": ds, "seed": int(seed)}
        row["IF"] = roc_auc_score(y, -res["IF_test"])
        for c in cands:
            try:
                s, cpu = candidate(res, c)
            except KeyError:
                continue
            s = np.nan_to_num(s, nan=-1e300, neginf=-1e300)
            row[c] = roc_auc_score(y, -s)
            row[c + "@cpu"] = cpu
        rows.append(row)
    df = pd.DataFrame(rows).dropna()  # only (set, seed) runs with every candidate
    per = df.groupby(["coll", "ds"]).mean(numeric_only=True)
    nseeds = df.groupby(["coll", "ds"])["seed"].count()
    out = defaultdict(dict)
    for c in ["IF", *cands]:
        if c not in per:
            continue
        for coll in per.index.get_level_values(0).unique():
            sub = per.loc[coll]
            out[c][f"{coll[:5]}"] = sub[c].mean()
            d = sub["IF"] - sub[c]
            out[c][f"{coll[:5]}_worst"] = d.max()
            out[c][f"{coll[:5]}_wset"] = d.idxmax()[:14]
            out[c][f"{coll[:5]}_n>.05"] = int((d > 0.05).sum())
        if c + "@cpu" in df:
            out[c]["med_cpu"] = df[c + "@cpu"].median()
    table = pd.DataFrame(out).T
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(f"seeds per set: {sorted(set(nseeds))}, sets: {len(per)}")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    return df, per


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
