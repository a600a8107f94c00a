"""Disclosure control for published counts: which to withhold so that no withheld count can be worked out.

Pure and generic. A :class:`System` holds counts by key and the linear identities an outsider knows
between them: a table's rows and columns with their totals, a quarter as the sum of its months, the
same figure published in two tables. :func:`suppress` withholds every count ``0 < v < k`` (primary
suppression), then further counts (complementary suppression) until an exact audit finds no
withheld count that the published counts and the identities determine.

The audit is exact linear algebra over the integers: a withheld count ``x`` is determined when some
combination of the identities holds no withheld count but ``x``, i.e. when ``e_x`` lies in the row
space of the identities restricted to the withheld counts. Withheld counts that share no identity
are independent, so the audit runs per connected component.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from math import gcd

Key = tuple[str, ...]
Row = dict[int, int]


@dataclass
class System:
    """Counts by key and the identities ``sum(coefficient * count) == 0`` that hold between them."""

    values: dict[Key, int] = field(default_factory=dict)
    equations: list[dict[Key, int]] = field(default_factory=list)
    #: Counts never withheld as a complement (only when below k or in :attr:`withheld`): another
    #: system, protected on its own, holds them too, and both must agree on them.
    fixed: set[Key] = field(default_factory=set)
    #: Counts withheld whatever their value, as if below k.
    withheld: set[Key] = field(default_factory=set)
    #: The order in which complements are chosen (lowest first; ties by key).
    preference: dict[Key, tuple[int, ...]] = field(default_factory=dict)

    def add(self, key: Key, value: int, preference: tuple[int, ...] = ()) -> None:
        self.values[key] = int(value)
        self.preference[key] = preference

    def equation(self, terms: Mapping[Key, int]) -> None:
        """``sum(coefficient * count) == 0``; a key that was never added is a published zero."""
        self.equations.append(dict(terms))


def suppress(system: System, k: int) -> set[Key]:
    """The keys to withhold: primary suppression, then complements until the exact audit is clean.

    A complement is taken from the identity, or the combination of identities, that exposes a
    withheld count: of its published counts, preferably one that no identity between published
    counts holds (withholding it then breaks every such combination at once), the one that leaves
    the fewest identities with a single withheld count, then by :attr:`System.preference`. A
    withheld count that counts published whatever else is withheld pin down (``fixed`` ones, zeros
    outside every table) is published instead when it was only a complement; a primary one would
    stay exposed, which the systems built in this service never produce (their tests say so).
    """
    keys = sorted(system.values)
    index = {key: i for i, key in enumerate(keys)}
    n = len(keys)
    preference = [(*system.preference.get(key, ()), i) for i, key in enumerate(keys)]
    equations: list[Row] = []
    for terms in system.equations:
        row: Row = {}
        for key, coefficient in terms.items():
            if key in index:  # absent: a published zero, a constant
                row[index[key]] = row.get(index[key], 0) + coefficient
        row = {i: c for i, c in row.items() if c}
        if row:
            equations.append(row)
    equations_of: list[list[int]] = [[] for _ in range(n)]
    for e, row in enumerate(equations):
        for i in row:
            equations_of[i].append(e)

    primary = [0 < system.values[key] < k or key in system.withheld for key in keys]
    hidden = primary[:]
    fixed = [key in system.fixed for key in keys]
    _pin_constants(equations, equations_of, hidden, fixed)

    count = [sum(hidden[i] for i in row) for row in equations]
    singles = [e for e, c in enumerate(count) if c == 1]
    heapq.heapify(singles)
    given_up: set[int] = set()

    def set_hidden(i: int, flag: bool) -> None:
        hidden[i] = flag
        for e in equations_of[i]:
            count[e] += 1 if flag else -1
            if count[e] == 1:
                heapq.heappush(singles, e)

    def cost(i: int) -> tuple[int, ...]:
        # Withholding i leaves each of its identities that had nothing withheld with a single
        # withheld count, which needs a complement in turn: the fewer, the better.
        return (sum(count[e] == 0 for e in equations_of[i]), *preference[i])

    def complement(candidates: Iterable[int]) -> int | None:
        options = [i for i in candidates if not hidden[i] and not fixed[i]]
        return min(options, key=cost) if options else None

    def unprotectable(x: int) -> None:
        # Everything that pins x down is published whatever we withhold: x is known anyway.
        if primary[x]:
            given_up.add(x)
        else:
            fixed[x] = True
            set_hidden(x, False)

    clean: set[frozenset[int]] = set()
    while True:
        # Cheap first: an identity with a single withheld count gives it away.
        while singles:
            e = heapq.heappop(singles)
            if count[e] != 1:
                continue
            x = next(i for i in equations[e] if hidden[i])
            if x in given_up:
                continue
            extra = complement(equations[e])
            if extra is None:
                unprotectable(x)
            else:
                set_hidden(extra, True)
        # Then the exact audit, per component of withheld counts linked by identities; every
        # determined count of a component gets a complement in one round, then it is audited again.
        audited = False
        for members in _components(equations, hidden):
            if members in clean:
                continue
            audited = True
            exposed, published_only = _determined(members, equations, equations_of, hidden, given_up)
            if not exposed:
                clean.add(members)
            for x, certificate in exposed:
                if any(hidden[i] for i in certificate):
                    continue  # a complement of this round broke this combination already
                # Withholding a count of the certificate that no identity between published counts
                # holds breaks every combination that gives x away at once; else take any, go on.
                sufficient = [
                    i for i in certificate if i not in published_only and all(count[e] for e in equations_of[i])
                ]
                extra = complement(sufficient)
                if extra is None:
                    extra = complement(certificate)
                if extra is None:
                    unprotectable(x)
                else:
                    set_hidden(extra, True)
        if not audited:
            return {keys[i] for i in range(n) if hidden[i]}


def _pin_constants(equations: list[Row], equations_of: list[list[int]], hidden: list[bool], fixed: list[bool]) -> None:
    """Mark as fixed the counts that fixed published counts alone determine (never worth withholding)."""
    constant = [f and not h for f, h in zip(fixed, hidden, strict=True)]
    queue = list(range(len(equations)))
    while queue:
        e = queue.pop()
        open_ = [i for i in equations[e] if not constant[i]]
        if len(open_) == 1:
            i = open_[0]
            constant[i] = fixed[i] = True
            queue.extend(equations_of[i])


def _components(equations: list[Row], hidden: list[bool]) -> list[frozenset[int]]:
    parent = {i: i for i, h in enumerate(hidden) if h}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for row in equations:
        members = [i for i in row if hidden[i]]
        for other in members[1:]:
            a, b = root(members[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[int, set[int]] = {}
    for i in parent:
        groups.setdefault(root(i), set()).add(i)
    return [frozenset(groups[r]) for r in sorted(groups)]


def _combine(a: int, row: Row, b: int, other: Row) -> Row:
    """``a * row + b * other``, divided by the gcd of its coefficients (integers stay small)."""
    result = {i: a * c for i, c in row.items()}
    for i, c in other.items():
        value = result.get(i, 0) + b * c
        if value:
            result[i] = value
        else:
            result.pop(i, None)
    divisor = 0
    for c in result.values():
        divisor = gcd(divisor, c)
        if divisor == 1:
            return result
    return {i: c // divisor for i, c in result.items()} if divisor > 1 else result


def _determined(
    members: frozenset[int],
    equations: list[Row],
    equations_of: list[list[int]],
    hidden: list[bool],
    given_up: set[int],
) -> tuple[list[tuple[int, list[int]]], set[int]]:
    """The withheld counts of the component that the identities determine, each with its certificate,
    and the counts that identities between published counts only hold.

    Gaussian elimination pivoting on withheld counts only, published counts carried along: a
    withheld count is determined exactly when its pivot row holds no other withheld count (the
    pivot rows stay reduced against each other), and that row's published counts are the ones
    an outsider combines to work it out: withholding one of them breaks that combination. Rows
    left with published counts only span the identities between published counts.
    """
    pivots: dict[int, Row] = {}
    published_only: set[int] = set()
    for e in sorted({e for i in members for e in equations_of[i]}):
        row = equations[e]
        for column in [c for c in row if c in pivots]:
            a = row.get(column)
            if a:
                pivot = pivots[column]
                row = _combine(pivot[column], row, -a, pivot)
        lead = min((i for i in row if hidden[i]), default=None)
        if lead is None:
            published_only.update(row)
            continue
        for column, pivot in pivots.items():
            b = pivot.get(lead)
            if b:
                pivots[column] = _combine(row[lead], pivot, -b, row)
        pivots[lead] = row
    exposed = [
        (x, sorted(i for i in row if i != x))
        for x, row in sorted(pivots.items())
        if x not in given_up and all(i == x or not hidden[i] for i in row)
    ]
    return exposed, published_only
