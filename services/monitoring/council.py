"""The integration council's view (Integrationsrat): proposals and their follow-up. Pure rules, no I/O.

A proposal is made by an analyst or an admin, from a rule of the council report (``R1-waiting-list`` ...)
or on its own. It is then accepted or rejected, assigned to whoever carries it out (an office, a person
or a role, as free text: the city's organisation is not the platform's) and tracked to done. Every step
is kept as the proposal's history; a done or rejected proposal can be opened again, with a reason.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PROPOSED = "proposed"  # vorgeschlagen
    ACCEPTED = "accepted"  # angenommen
    REJECTED = "rejected"  # abgelehnt
    IN_PROGRESS = "in_progress"  # in Umsetzung
    DONE = "done"  # erledigt


class Action(StrEnum):
    CREATE = "create"
    ACCEPT = "accept"
    REJECT = "reject"
    ASSIGN = "assign"
    COMPLETE = "complete"
    REOPEN = "reopen"


class TransitionError(ValueError):
    """The action does not fit the proposal's status (answered with 409)."""


class IncompleteAction(ValueError):
    """The action lacks what it needs: whom to assign, or a reason (answered with 422)."""


#: action -> (the statuses it applies to, the status after it); assigning keeps a proposal in progress.
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    Action.ACCEPT: (frozenset({Status.PROPOSED}), Status.ACCEPTED),
    Action.REJECT: (frozenset({Status.PROPOSED, Status.ACCEPTED}), Status.REJECTED),
    Action.ASSIGN: (frozenset({Status.ACCEPTED, Status.IN_PROGRESS}), Status.IN_PROGRESS),
    Action.COMPLETE: (frozenset({Status.ACCEPTED, Status.IN_PROGRESS}), Status.DONE),
    Action.REOPEN: (frozenset({Status.REJECTED, Status.DONE}), Status.PROPOSED),
}


def apply(status: Status, action: Action, *, assignee: str | None = None, note: str | None = None) -> Status:
    """The status after ``action``: :class:`TransitionError` when it does not fit the status,
    :class:`IncompleteAction` when the assignee or the reason is missing."""
    if action is Action.CREATE:
        raise TransitionError("a proposal is created once")
    allowed, after = TRANSITIONS[action]
    if status not in allowed:
        raise TransitionError(f"a proposal that is {status.value} cannot be given '{action.value}'")
    if action is Action.ASSIGN and not (assignee and assignee.strip()):
        raise IncompleteAction("assigning needs whom to assign it to")
    if action in (Action.REJECT, Action.REOPEN) and not (note and note.strip()):
        raise IncompleteAction(f"'{action.value}' needs a reason in the note")
    return after
