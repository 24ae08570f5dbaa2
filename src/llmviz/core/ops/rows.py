"""Element-wise work on large arrays in row blocks, on every core (numpy releases the GIL inside its loops),
as BLAS does for the matrix products. The numbers are the same whichever thread computes a block."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="llmviz-ops")
_PARALLEL_FROM = 1 << 20  # elements: below this, one thread is quicker than handing work out


def by_rows(work, n_rows: int, size: int) -> None:
    """Call work(slice) over row blocks that cover range(n_rows): in parallel for a large array. Each block
    is about 256 KB, so temporaries stay small."""
    step = max(1, (1 << 16) * n_rows // max(size, 1))
    blocks = [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]
    if size < _PARALLEL_FROM or _POOL._max_workers == 1:
        for b in blocks:
            work(b)
        return
    chunk, errors = -(-len(blocks) // _POOL._max_workers), np.geterr()  # the caller's handling of overflow, also here

    def run(bs):
        with np.errstate(**errors):
            for b in bs:
                work(b)

    for f in [_POOL.submit(run, blocks[i:i + chunk]) for i in range(0, len(blocks), chunk)]:
        f.result()


def rowwise(op):
    """An element-wise op computed row block by row block (a row: the last axis), on every core for a large
    array. op(out, x, *per_row) writes the rows of x it is given into out; per_row inputs hold one number per
    row (a row's max, its sum)."""
    @functools.wraps(op)
    def run(x, *per_row):
        n = x.shape[-1]
        out = np.empty(x.shape, np.float32)
        rows, flat, cols = x.reshape(-1, n), out.reshape(-1, n), [r.reshape(-1, 1) for r in per_row]
        by_rows(lambda b: op(flat[b], rows[b], *(c[b] for c in cols)), len(rows), x.size)
        return out
    return run
