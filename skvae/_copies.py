"""Copies of rows: filling a missing cell from a training row that is the
same record.

Real tables often hold the same record more than once (entered twice, or
joined in twice). When a row with missing cells agrees with a training row on
so many observed cells that agreeing by chance is implausible, that training
row is a copy of it, and its values are the best fill for the cells it has
and the row lacks: trees and neighbour imputers find such copies by
themselves, a VAE (whose decoder is smooth in the code) does not.

Chance agreement is measured per column by its collision probability
``q_j = sum_v f_v^2`` (the probability that two random training rows share
their value in column ``j``, ``f_v`` the share of value ``v``): two rows
that agree on a set ``S`` of cells agree by chance with probability about
``prod_{j in S} q_j``, and among ``n`` training rows a row meets about
``n prod_{j in S} q_j`` such chance partners. A training row counts as a
copy when that expected number is at most ``CHANCE``, when the two rows agree
on every cell both observe, and when they share at least ``MIN_CELLS`` of
them.
"""

import numpy as np

#: Largest expected number of training rows that would agree with a row by
#: chance on the cells a copy agrees on (the columns taken as independent).
CHANCE = 1e-3

#: Fewest cells observed in both rows that a copy must agree on.
MIN_CELLS = 3

#: A row's candidates are the training rows that share its value in one of
#: its ``KEYS`` most distinctive observed columns, among the columns where
#: at most ``KEY_MATCHES`` training rows are expected to share a value
#: (``n q_j``): a bound on the work, which loses only copies that lack all
#: of those columns.
KEYS = 2
KEY_MATCHES = 300

#: Candidate pairs checked at a time.
_CHUNK = 200_000


def collision_log_probabilities(D):
    """``log q_j`` per column of the training codes ``D`` (NaN missing):
    the log-probability that two random rows with the column observed share
    its value (0 for columns without observed cells)."""
    out = np.zeros(D.shape[1])
    for j in range(D.shape[1]):
        values = D[:, j]
        values = values[~np.isnan(values)]
        if values.size:
            _, counts = np.unique(values, return_counts=True)
            share = counts / values.size
            out[j] = np.log(np.sum(share * share))
    return out


def _candidate_pairs(D, log_q, X, rows):
    """``(query, train)`` index pairs: the training rows that share the value
    of one of the query row's key columns (see ``KEYS``), without repeats."""
    n = D.shape[0]
    seen = ~np.isnan(X[rows])
    usable = seen & (np.log(KEY_MATCHES / n) >= log_q)
    rank = np.where(usable, log_q, np.inf)
    keys = np.argsort(rank, axis=1, kind="stable")[:, :KEYS]
    queries, trains = [], []
    for k in range(keys.shape[1]):
        for j in np.unique(keys[:, k]):
            sel = (keys[:, k] == j) & usable[np.arange(rows.size), j]
            if not sel.any():
                continue
            column = D[:, j]
            train_rows = np.flatnonzero(~np.isnan(column))
            order = train_rows[np.argsort(column[train_rows], kind="stable")]
            values = column[order]
            q = rows[sel]
            lo = np.searchsorted(values, X[q, j], side="left")
            hi = np.searchsorted(values, X[q, j], side="right")
            count = hi - lo
            if not count.any():
                continue
            starts = np.repeat(lo - np.cumsum(count) + count, count)
            queries.append(np.repeat(q, count))
            trains.append(order[starts + np.arange(count.sum())])
    if not queries:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    pair = np.unique(np.concatenate(queries) * n + np.concatenate(trains))
    return pair // n, pair % n


def donor_values(D, log_q, X, is_categorical):
    """Values from copies for the missing cells of ``X``.

    Parameters
    ----------
    D : ndarray of shape (n_train, n_features)
        The training rows as codes (NaN on missing cells; level indices in
        categorical columns).
    log_q : ndarray of shape (n_features,)
        From :func:`collision_log_probabilities`.
    X : ndarray of shape (n_samples, n_features)
        Rows to fill, as codes.
    is_categorical : ndarray of bool of shape (n_features,)

    Returns
    -------
    values : ndarray of shape (n_samples, n_features)
        For each missing cell of ``X`` that a copy observes, the mean of the
        copies' values (numeric) or their most frequent level (categorical);
        NaN elsewhere.
    """
    out = np.full(X.shape, np.nan)
    n_train = D.shape[0]
    if n_train == 0 or X.shape[0] == 0:
        return out
    limit = np.log(CHANCE / n_train)
    missing = np.isnan(X)
    observed_d = ~np.isnan(D)
    # rows with a hole, and enough observed evidence to recognise a copy
    evidence = np.where(missing, 0.0, log_q).sum(axis=1)
    rows = np.flatnonzero(missing.any(axis=1) & (evidence <= limit))
    query, train = _candidate_pairs(D, log_q, X, rows)
    keep = []
    for start in range(0, query.size, _CHUNK):
        i, r = query[start : start + _CHUNK], train[start : start + _CHUNK]
        both = observed_d[r] & ~missing[i]
        agree = np.all((D[r] == X[i]) | ~both, axis=1)
        strength = np.where(both, log_q, 0.0).sum(axis=1)
        gives = np.any(observed_d[r] & missing[i], axis=1)
        copy = agree & gives & (both.sum(axis=1) >= MIN_CELLS) & (strength <= limit)
        keep.append(np.flatnonzero(copy) + start)
    if not keep:
        return out
    keep = np.concatenate(keep)
    i, r = query[keep], train[keep]
    # every (row, column) cell a copy fills, with the copy's value
    fills = missing[i] & observed_d[r]
    pair, col = np.nonzero(fills)
    row, value = i[pair], D[r[pair], col]
    numeric = ~is_categorical[col]
    if numeric.any():
        total = np.zeros(X.shape)
        count = np.zeros(X.shape)
        np.add.at(total, (row[numeric], col[numeric]), value[numeric])
        np.add.at(count, (row[numeric], col[numeric]), 1)
        done = count > 0
        out[done] = total[done] / count[done]
    cat = ~numeric
    if cat.any():
        # the most frequent level per cell (the smallest on ties)
        triples = np.unique(
            np.column_stack([row[cat], col[cat], value[cat]]),
            axis=0,
            return_counts=True,
        )
        (cells, votes) = triples
        order = np.lexsort((cells[:, 2], -votes, cells[:, 1], cells[:, 0]))
        cells = cells[order]
        first = np.ones(len(cells), dtype=bool)
        first[1:] = np.any(cells[1:, :2] != cells[:-1, :2], axis=1)
        best = cells[first]
        out[best[:, 0].astype(np.intp), best[:, 1].astype(np.intp)] = best[:, 2]
    return out
