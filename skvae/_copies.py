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

#: A row's candidates are the training rows that share its values in one of
#: its ``KEYS`` keys: its most distinctive observed column, or its two most
#: distinctive ones when at most ``KEY_MATCHES`` training rows are expected
#: to share the one (``n q_j``) but not the two, then the next column or
#: two. A bound on the work, which loses only copies that lack a column of
#: every key.
KEYS = 2
KEY_MATCHES = 300

#: Candidate pairs checked at a time, and rows looked up at a time (which
#: bounds the memory of the pairs to about ``KEYS * KEY_MATCHES`` per row).
_CHUNK = 200_000
_ROWS = 5_000


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


def _codes(D, j, cache):
    """Column ``j``'s training levels (sorted) and each row's level index
    (-1 where missing), computed once per column."""
    key = ("codes", j)
    if key not in cache:
        column = D[:, j]
        seen = ~np.isnan(column)
        levels = np.unique(column[seen])
        codes = np.full(column.shape, -1, dtype=np.int64)
        codes[seen] = np.searchsorted(levels, column[seen])
        cache[key] = levels, codes
    return cache[key]


def _query_codes(D, j, values, cache):
    """Level indices of ``values`` in column ``j`` (-2 for values no
    training row has)."""
    levels, _ = _codes(D, j, cache)
    if levels.size == 0:
        return np.full(values.shape, -2, dtype=np.int64)
    pos = np.minimum(np.searchsorted(levels, values), levels.size - 1)
    return np.where(levels[pos] == values, pos, -2)


def _sorted_key(D, cols, cache):
    """The training rows with every column of ``cols`` observed, in the
    order of their joint level code, and those codes."""
    if cols not in cache:
        joint = np.zeros(D.shape[0], dtype=np.int64)
        valid = np.ones(D.shape[0], dtype=bool)
        for j in cols:
            levels, codes = _codes(D, j, cache)
            joint = joint * max(levels.size, 1) + codes
            valid &= codes >= 0
        train_rows = np.flatnonzero(valid)
        order = train_rows[np.argsort(joint[train_rows], kind="stable")]
        cache[cols] = order, joint[order]
    return cache[cols]


def _row_keys(log_q, seen, bound):
    """Each row's ``KEYS`` keys: a run of its most distinctive observed
    columns, one column, or two when one is not distinctive enough (at most
    ``KEY_MATCHES`` expected matches); ``-1`` columns for no key."""
    rank = np.where(seen, log_q, np.inf)
    order = np.argsort(rank, axis=1, kind="stable")
    sorted_q = np.take_along_axis(rank, order, axis=1)
    n_rows, d = seen.shape
    keys = np.full((n_rows, KEYS, 2), -1, dtype=np.intp)
    at = np.zeros(n_rows, dtype=np.intp)  # next column to use, per row
    rows = np.arange(n_rows)
    for k in range(KEYS):
        first = np.minimum(at, d - 1)
        second = np.minimum(at + 1, d - 1)
        q1 = np.where(at < d, sorted_q[rows, first], np.inf)
        q2 = np.where(at + 1 < d, q1 + sorted_q[rows, second], np.inf)
        single = q1 <= bound
        pair = ~single & (q2 <= bound)
        keys[single, k, 0] = order[rows[single], first[single]]
        keys[pair, k, 0] = order[rows[pair], first[pair]]
        keys[pair, k, 1] = order[rows[pair], second[pair]]
        at = at + np.where(single, 1, 2)
    return keys


def _candidate_pairs(D, log_q, X, rows, cache):
    """``(query, train)`` index pairs: the training rows that share the
    values of one of the query row's keys (:func:`_row_keys`), without
    repeats."""
    n, d = D.shape
    keys = _row_keys(log_q, ~np.isnan(X[rows]), np.log(KEY_MATCHES / n))
    queries, trains = [], []
    for k in range(KEYS):
        kinds = keys[:, k, 0] * (d + 1) + keys[:, k, 1] + 1
        for kind in np.unique(kinds[keys[:, k, 0] >= 0]):
            sel = kinds == kind
            cols = tuple(int(c) for c in keys[np.flatnonzero(sel)[0], k] if c >= 0)
            order, joint = _sorted_key(D, cols, cache)
            q = rows[sel]
            wanted = np.zeros(q.size, dtype=np.int64)
            valid = np.ones(q.size, dtype=bool)
            for j in cols:
                levels, _ = _codes(D, j, cache)
                code = _query_codes(D, j, X[q, j], cache)
                wanted = wanted * max(levels.size, 1) + code
                valid &= code >= 0
            lo = np.searchsorted(joint, wanted, side="left")
            hi = np.searchsorted(joint, wanted, side="right")
            count = np.where(valid, hi - lo, 0)
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
    cache = {}
    copies = []
    for first in range(0, rows.size, _ROWS):
        query, train = _candidate_pairs(D, log_q, X, rows[first : first + _ROWS], cache)
        for start in range(0, query.size, _CHUNK):
            i, r = query[start : start + _CHUNK], train[start : start + _CHUNK]
            both = observed_d[r] & ~missing[i]
            agree = np.all((D[r] == X[i]) | ~both, axis=1)
            strength = np.where(both, log_q, 0.0).sum(axis=1)
            gives = np.any(observed_d[r] & missing[i], axis=1)
            copy = agree & gives & (both.sum(axis=1) >= MIN_CELLS)
            copy &= strength <= limit
            copies.append((i[copy], r[copy]))
    if not copies:
        return out
    i = np.concatenate([c[0] for c in copies])
    r = np.concatenate([c[1] for c in copies])
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
        cells, votes = np.unique(
            np.column_stack([row[cat], col[cat], value[cat]]),
            axis=0,
            return_counts=True,
        )
        order = np.lexsort((cells[:, 2], -votes, cells[:, 1], cells[:, 0]))
        cells = cells[order]
        first = np.ones(len(cells), dtype=bool)
        first[1:] = np.any(cells[1:, :2] != cells[:-1, :2], axis=1)
        best = cells[first]
        out[best[:, 0].astype(np.intp), best[:, 1].astype(np.intp)] = best[:, 2]
    return out
