"""The sums of a diff per *cell* — (side, group, key): side A or B, a group of invocations (a task), a key (a
function, a module…) — and its dense per-invocation matrices, from walks over the stats rows where they lie.

Every invocation (profile) belongs to at most one (side, group), and its stats rows are contiguous (``stats`` stays
in profile-id order): a *run*.  A row's cell is its run's first cell plus the key of its function id.  The rows are
walked in chunks straight from the set's columns, with ``np.add.at`` carrying each cell's sum on from chunk to chunk:
no column is reordered, masked or copied whole, and every cell adds its rows one by one in the order of the walk —
exactly what one ``np.bincount`` over the rows in that order gives.

* One walk from the last row to the first: row counts, and the totals of the metric **in pstats order** (per
  (side, group): the rows of its first invocation, then the others reversed — the order of
  :func:`celerylab.core.rules.pstats_ordered`; the first invocation's rows are added before the walk).
* Walks from the first row to the last (:meth:`Cells.walk`): inclusive time and calls (row order, as the per-group
  ``np.bincount`` they replace), and the dense (key × invocation) matrices of the metric the distributions need,
  a few groups at a time in one reused buffer.

The exclusive time of each (side, group), which only scales the relevance threshold, is summed as ``np.sum`` sums
the group's rows gathered in row order: the very value the per-group implementation used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CHUNK = 1 << 17  # rows per step of a walk: its codes stay in cache
GROUP_CELLS = 1 << 24  # dense cells (float64) per walk when each walk reads its own groups' rows only (128 MB)
DENSE_CELLS = 1 << 26  # … when the groups' rows are spread over the whole set: fewer, larger walks (512 MB)
BRIDGE = 1 << 12  # rows of other profiles a walk reads through rather than start a new range
REREAD = 1.5  # walks a few groups at a time as long as together they read the rows at most this many times


@dataclass
class Rows:
    """The rows a walk reads, in profile-id order: a set's stats rows, or one row per profile (``fid`` all 0).
    ``value`` is the metric, ``tt`` the exclusive time."""

    pid: np.ndarray
    fid: np.ndarray
    fkey: np.ndarray | None  # key code per function id (intp); None: the function id is the key
    value: np.ndarray
    cum: np.ndarray
    calls: np.ndarray
    tt: np.ndarray


@dataclass
class Side:
    """The invocations of one side: their profile ids (in the set's order), the group of each, and the rows they
    read."""

    rows: Rows
    pids: np.ndarray
    groups: np.ndarray


class _Table:
    """The rows of one :class:`Rows` as runs of one profile each (its rows are contiguous): where each run starts
    and stops, the first cell of its profile's (side, group) — ``dump`` for a profile on no side of the diff — and
    the profile's slot, its column in the group's dense matrices (a group's invocations in profile-id order).  A
    row's cell and slot are its run's, repeated: cheaper than a lookup per row."""

    def __init__(self, rows: Rows, dump: int) -> None:
        self.rows, self.dump = rows, dump
        self._placed: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.heads: list[tuple[int, int]] = []  # row ranges added first in pstats order (one per (side, group))

    def place(self, lo: np.ndarray, hi: np.ndarray, cell: np.ndarray, slot: np.ndarray) -> None:
        """Profiles whose rows are ``[lo, hi)``, with the first cell of their (side, group) and their slot."""
        self._placed.append((lo, hi, cell, slot))

    def runs(self) -> None:
        """The runs, once every side is placed."""
        lo, hi, cell, slot = (np.concatenate(x) for x in zip(*self._placed))
        with_rows = np.flatnonzero(hi > lo)
        o = with_rows[np.argsort(lo[with_rows], kind="stable")]
        lo, hi, cell, slot = lo[o], hi[o], cell[o], slot[o]
        n = len(self.rows.pid)
        edges = np.unique(np.concatenate([[0, n], lo, hi]))
        self.start, self.stop = edges[:-1], edges[1:]  # runs: every placed profile, and what lies between them
        i = np.maximum(np.searchsorted(lo, self.start, "right") - 1, 0)
        placed = (self.start >= lo[i]) & (self.start < hi[i]) if len(lo) else np.zeros(len(self.start), dtype=bool)
        self.cell = np.where(placed, cell[i] if len(lo) else 0, self.dump)
        self.slot = np.where(placed, slot[i] if len(lo) else 0, 0)
        self.placed = placed
        self.rest = self.cell.copy()  # the cells of the walk after the heads: theirs are added already
        self.rest[np.searchsorted(self.start, [a for a, _b in self.heads]).astype(np.intp)] = self.dump

    def per_row(self, per_run: np.ndarray, a: int, b: int, reverse: bool) -> np.ndarray:
        """``per_run`` repeated over the rows ``[a, b)`` (last to first when ``reverse``)."""
        i0 = np.searchsorted(self.stop, a, "right")
        i1 = np.searchsorted(self.start, b, "left")
        lens = np.minimum(self.stop[i0:i1], b) - np.maximum(self.start[i0:i1], a)
        values = per_run[i0:i1]
        return np.repeat(values[::-1], lens[::-1]) if reverse else np.repeat(values, lens)

    def cover(self, runs: np.ndarray) -> list[tuple[int, int]]:
        """Row ranges holding the runs ``runs`` (a mask), merged across gaps of at most :data:`BRIDGE` rows."""
        start, stop = self.start[runs], self.stop[runs]
        if not len(start):
            return []
        gap = np.flatnonzero(start[1:] - stop[:-1] > BRIDGE)
        return list(zip(start[np.r_[0, gap + 1]].tolist(), stop[np.r_[gap, len(stop) - 1]].tolist()))

    def column(self, col: np.ndarray, a: int, b: int, reverse: bool) -> np.ndarray:
        """Rows ``[a, b)`` of a column (a view; last to first when ``reverse``)."""
        return col[a:b][::-1] if reverse else col[a:b]


class _Scratch:
    """The buffers a walk works in, chunk after chunk (``out=``): memory a process has not touched yet is slow to
    touch (page faults), so little is allocated per chunk."""

    def __init__(self, n: int) -> None:
        self.key, self.at = np.empty(n, dtype=np.intp), np.empty(n, dtype=np.intp)
        self.value = np.empty(n)

    def codes(self, t: _Table, cell: np.ndarray, a: int, b: int, reverse: bool = False) -> np.ndarray:
        """The cell of every row in ``[a, b)``: its run's first cell + its key."""
        code = t.per_row(cell, a, b, reverse)
        fid = t.column(t.rows.fid, a, b, reverse)
        if t.rows.fkey is None:
            code += fid
        else:
            key = self.key[: b - a]
            np.copyto(key, fid)
            np.take(t.rows.fkey, key, out=key, mode="clip")  # every id is in range: "clip" checks nothing
            code += key
        return code

    def floats(self, col: np.ndarray) -> np.ndarray:
        """``col`` (a chunk of a column) as contiguous float64 (``np.add.at`` is slower on anything else)."""
        if col.dtype == np.float64 and col.flags.c_contiguous:
            return col
        out = self.value[: len(col)]
        np.copyto(out, col)
        return out

    def positions(self, t: _Table, pos: np.ndarray, code: np.ndarray, a: int, b: int) -> np.ndarray:
        """``pos[code]`` + the slot of each row's profile: the rows' dense cells."""
        at = self.at[: b - a]
        np.take(pos, code, out=at, mode="clip")
        at += t.per_row(t.slot, a, b, False)
        return at


def _steps(lo: int, hi: int, *, reverse: bool = False) -> Iterator[tuple[int, int]]:
    """Row ranges of at most :data:`CHUNK` rows covering ``[lo, hi)``, first to last or last to first."""
    bounds = [(a, min(a + CHUNK, hi)) for a in range(lo, hi, CHUNK)]
    return reversed(bounds) if reverse else iter(bounds)


@dataclass
class _Window:
    """One forward walk: the key ranges ``(group, keys, lo, hi)`` whose dense matrices it fills, the groups whose
    rows it reads, and whether it sums their inclusive time and calls (their first walk)."""

    units: list[tuple[int, np.ndarray, int, int]]
    groups: np.ndarray  # bool per group
    sums: bool


@dataclass
class Block:
    """Dense matrices of keys ``keys[lo:hi]`` of group ``group``: per side, ``(hi - lo) × n`` (rows = keys,
    columns = the side's invocations of the group, 0 where the key did not run), None when the side has no
    invocation there; ``counts`` likewise (rows per cell), when asked for."""

    group: int
    lo: int
    hi: int
    mats: list[np.ndarray | None]
    counts: list[np.ndarray | None]


class Cells:
    """Per cell: row counts and the metric's pstats-order totals, and per (side, group): invocations, first
    invocation and exclusive time — computed on construction; :meth:`walk` for inclusive time, calls and the dense
    matrices."""

    def __init__(self, sides: list[Side], n_groups: int, n_keys: int) -> None:
        self.n_sides, self.n_groups, self.n_keys = len(sides), n_groups, n_keys
        shape = (self.n_sides, n_groups)
        self.n_cells = self.n_sides * n_groups * n_keys
        self.n = np.zeros(shape, dtype=np.int64)  # invocations
        self.first = np.full(shape, -1, dtype=np.int64)  # first invocation (the set's order) of each group
        self.tt = np.zeros(shape)  # exclusive time of the group's rows, summed as np.sum sums them in row order
        tables: dict[int, _Table] = {}  # sides sharing rows share a table: their profiles are disjoint
        for s, side in enumerate(sides):
            if id(side.rows) not in tables:
                tables[id(side.rows)] = _Table(side.rows, self.n_cells)
            self._place(s, side, tables[id(side.rows)])
        for t in tables.values():
            t.runs()
        self.tables = list(tables.values())
        self.count, self.total = self._reverse_walk()
        self.cum: np.ndarray | None = None
        self.calls: np.ndarray | None = None

    def _place(self, s: int, side: Side, table: _Table) -> None:
        pids = side.pids.astype(np.intp)
        groups = side.groups.astype(np.intp)
        g_n = np.bincount(groups, minlength=self.n_groups)
        self.n[s] = g_n
        if len(groups):
            gu, first = np.unique(groups, return_index=True)
            self.first[s, gu] = pids[first]
        order = np.lexsort((pids, groups))  # by group, then profile id: the rows' order within the group
        pids, groups = pids[order], groups[order]
        starts = np.concatenate([[0], np.cumsum(g_n)])
        row_pid = table.rows.pid
        ids = pids.astype(row_pid.dtype)  # searchsorted would cast every row's id to the ids' type
        lo = np.searchsorted(row_pid, ids, "left")
        hi = np.searchsorted(row_pid, ids, "right")
        table.place(lo, hi, (s * self.n_groups + groups) * self.n_keys, np.arange(len(pids)) - starts[groups])
        most = int(np.bincount(groups, weights=hi - lo).max(initial=0))  # rows of the largest group
        buf = np.empty(most, dtype=table.rows.tt.dtype)  # one buffer for every group: fresh memory is slow
        for g in np.flatnonzero(g_n):
            a, b = starts[g], starts[g + 1]
            self.tt[s, g] = _ranges(table.rows.tt, lo[a:b], hi[a:b], buf).sum()
            with_rows = np.flatnonzero(hi[a:b] > lo[a:b])
            # pstats adds the group's first invocation first when its rows come first (no lower profile id has rows)
            if len(with_rows) and pids[a + with_rows[0]] == self.first[s, g]:
                h = a + with_rows[0]
                table.heads.append((int(lo[h]), int(hi[h])))

    def _reverse_walk(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows per cell and the metric's totals in pstats order."""
        count = np.zeros(self.n_cells + self.n_keys, dtype=np.int64)  # the last n_keys cells: rows on no side
        total = np.zeros(self.n_cells + self.n_keys)
        scratch = _Scratch(CHUNK)
        for t in self.tables:
            steps = [(t.cell, a, b, False) for lo, hi in t.heads for a, b in _steps(lo, hi)]
            steps += [(t.rest, a, b, True) for a, b in _steps(0, len(t.rows.pid), reverse=True)]
            for cell, a, b, reverse in steps:
                code = scratch.codes(t, cell, a, b, reverse)
                np.add.at(count, code, 1)
                np.add.at(total, code, scratch.floats(t.column(t.rows.value, a, b, reverse)))
        return self._shaped(count), self._shaped(total)

    def _shaped(self, flat: np.ndarray) -> np.ndarray:
        return flat[: self.n_cells].reshape(self.n_sides, self.n_groups, self.n_keys)

    def walk(self, units: list[tuple[int, np.ndarray]], *, sums: bool = True, counts: bool = False) -> Iterator[Block]:
        """Dense matrices of the keys ``keys`` (sorted codes) of each ``(group, keys)`` of ``units``, one
        :class:`Block` per range of keys, yielded once the walk that fills them is done (the matrices are that
        walk's scratch: sort them in place, drop them before the next).  ``sums``: inclusive time and calls per
        cell too (``self.cum``, ``self.calls``: a group's are complete when its first block comes).

        The walks fill a few groups at a time, reading only those groups' rows: a task's invocations lie together
        in the rows (files are loaded in path order, ``<task>.<id>…``), so together the walks read the rows about
        once, in one buffer of :data:`GROUP_CELLS` cells.  When that would read the rows more than :data:`REREAD`
        times (the groups' rows spread over the set), fewer walks each read every row, in :data:`DENSE_CELLS`."""
        rows = sum(len(t.rows.pid) for t in self.tables)
        plan = self._plan(units, GROUP_CELLS, sums)
        if sum(b - a for w in plan for t in self.tables for a, b in t.cover(self._runs(t, w))) > REREAD * rows:
            plan = self._plan(units, DENSE_CELLS, sums)
        layouts = [self._layout(w) for w in plan]
        size = max((n for n, _pos, _off in layouts), default=0) + int(self.n.max(initial=0)) + 1
        dense = np.empty(size) if units else None  # one buffer for every walk: fresh memory is slow to touch
        count = np.empty(size, dtype=np.int64) if units and counts else None
        acc = (np.zeros(self.n_cells + self.n_keys), np.zeros(self.n_cells + self.n_keys)) if sums else None
        if acc is not None:
            self.cum, self.calls = self._shaped(acc[0]), self._shaped(acc[1])
        scratch = _Scratch(CHUNK)
        for w, layout in zip(plan, layouts):
            yield from self._walk_window(w, layout, scratch, dense, count, acc if w.sums else None)

    def sum_inclusive(self) -> None:
        """``self.cum`` and ``self.calls``, by walks without dense matrices."""
        for _ in self.walk([], sums=True):
            pass

    def _plan(self, units: list[tuple[int, np.ndarray]], budget: int, sums: bool) -> list[_Window]:
        """Walks of at most ``budget`` dense cells: whole groups packed together, a larger group's keys split
        over walks of its own (its sums in the first)."""
        plan: list[_Window] = []
        packed: list[tuple[int, np.ndarray, int, int]] = []
        used = 0

        def close() -> None:
            if packed:
                groups = np.zeros(self.n_groups, dtype=bool)
                groups[[g for g, *_ in packed]] = True
                plan.append(_Window(list(packed), groups, sums))
                packed.clear()

        for g, keys in units:
            width = int(self.n[:, g].sum())
            if len(keys) * width <= budget:
                if used + len(keys) * width > budget:
                    close()
                    used = 0
                packed.append((g, keys, 0, len(keys)))
                used += len(keys) * width
                continue
            close()
            used = 0
            per = max(1, budget // max(width, 1))
            for lo in range(0, len(keys), per):
                groups = np.zeros(self.n_groups, dtype=bool)
                groups[g] = True
                plan.append(_Window([(g, keys, lo, min(lo + per, len(keys)))], groups, sums and lo == 0))
        close()
        if sums:  # every group's sums, also of groups without matrices
            if not plan:
                plan.append(_Window([], np.zeros(self.n_groups, dtype=bool), True))
            covered = np.logical_or.reduce([w.groups for w in plan])
            plan[0].groups = plan[0].groups | ~covered
        return plan

    def _runs(self, t: _Table, w: _Window) -> np.ndarray:
        """Which runs of ``t`` a walk reads: the profiles of its groups."""
        group = (t.cell // self.n_keys) % self.n_groups
        return t.placed & w.groups[group]

    def _layout(self, w: _Window) -> tuple[int, np.ndarray, list[list[int]]]:
        """The walk's dense cells: their number, per cell code the first dense cell of its row (the number: left
        out), and per unit and side the offset of its matrix (-1: no invocation)."""
        n_groups, n_keys = self.n_groups, self.n_keys
        size = sum((hi - lo) * int(self.n[:, g].sum()) for g, _k, lo, hi in w.units)
        pos = np.full(self.n_cells + n_keys, size, dtype=np.intp)
        offsets = []
        off = 0
        for g, keys, lo, hi in w.units:
            side_offsets = []
            for s in range(self.n_sides):
                n = int(self.n[s, g])
                side_offsets.append(off if n else -1)
                if n:
                    pos[(s * n_groups + g) * n_keys + keys[lo:hi]] = off + np.arange(hi - lo) * n
                    off += (hi - lo) * n
            offsets.append(side_offsets)
        return size, pos, offsets

    def _walk_window(self, w: _Window, layout: tuple[int, np.ndarray, list[list[int]]], scratch: _Scratch,
                     dense: np.ndarray | None, count: np.ndarray | None,
                     sums: tuple[np.ndarray, np.ndarray] | None) -> Iterator[Block]:  # fmt: skip
        size, pos, offsets = layout
        fill = dense if w.units else None
        if fill is not None:
            fill[: size + int(self.n.max()) + 1] = 0.0  # rows of cells left out land after ``size``
            if count is not None:
                count[: size + int(self.n.max()) + 1] = 0
        for t in self.tables:
            r = t.rows
            runs = self._runs(t, w)
            cell = np.where(runs, t.cell, self.n_cells)  # rows of other groups: the left-out cells
            for lo, hi in t.cover(runs):
                for a, b in _steps(lo, hi):
                    code = scratch.codes(t, cell, a, b)
                    if sums is not None:
                        np.add.at(sums[0], code, scratch.floats(r.cum[a:b]))
                        np.add.at(sums[1], code, scratch.floats(r.calls[a:b]))
                    if fill is not None:
                        at = scratch.positions(t, pos, code, a, b)
                        np.add.at(fill, at, scratch.floats(r.value[a:b]))
                        if count is not None:
                            np.add.at(count, at, 1)
        if fill is None:
            return
        for (g, _keys, lo, hi), side_offsets in zip(w.units, offsets):
            mats: list[np.ndarray | None] = []
            cnts: list[np.ndarray | None] = []
            for s, o in enumerate(side_offsets):
                n = int(self.n[s, g])
                cells = slice(o, o + (hi - lo) * n)
                mats.append(fill[cells].reshape(hi - lo, n) if o >= 0 else None)
                cnts.append(count[cells].reshape(hi - lo, n) if o >= 0 and count is not None else None)
            yield Block(g, lo, hi, mats, cnts)


def _ranges(col: np.ndarray, lo: np.ndarray, hi: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """``col[lo[0]:hi[0]]``, ``col[lo[1]:hi[1]]``, … as one contiguous array (the start of ``buf``)."""
    out = buf[: int((hi - lo).sum())]
    if len(out):
        start = np.flatnonzero(np.concatenate([[True], lo[1:] != hi[:-1]]))  # adjacent ranges copied as one
        stop = np.concatenate([start[1:], [len(lo)]]) - 1
        np.concatenate([col[a:b] for a, b in zip(lo[start].tolist(), hi[stop].tolist())], out=out)
    return out
