"""The operator's actions and what each page says will happen. Which task may take which
action is not decided here: `states.OPERATOR_TRANSITIONS` (the API's table) decides."""

from __future__ import annotations

from dataclasses import dataclass

from herald.db.console import sources_for
from herald.states import OPERATOR_TRANSITIONS, TaskStatus


@dataclass(frozen=True, slots=True)
class Action:
    name: str  # in URLs and forms
    target: TaskStatus
    label: str  # the button
    outcome: str  # what will happen, said before it does

    def allowed_from(self, status: str) -> bool:
        try:
            current = TaskStatus(status)
        except ValueError:
            return False
        return (current, self.target) in OPERATOR_TRANSITIONS

    @property
    def sources(self) -> list[str]:
        return sources_for(self.target)

    @property
    def audit_name(self) -> str:
        """The transition's name in the audit trail (the API's: cancel, resend, resolve)."""
        return next(name for (_, to), name in OPERATOR_TRANSITIONS.items() if to is self.target)


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "cancel",
            TaskStatus.CANCELLED,
            "Cancel",
            "The task will not be sent. It becomes cancelled, which is final.",
        ),
        Action(
            "resend",
            TaskStatus.PENDING,
            "Resend",
            "The task becomes pending, due now, with its attempts counted from zero, and goes"
            " to the workers at once.",
        ),
        Action(
            "resolve-delivered",
            TaskStatus.DELIVERED,
            "Mark delivered",
            "You saw the message in the chat: the task becomes delivered and is never sent again.",
        ),
        Action(
            "resolve-failed",
            TaskStatus.FAILED,
            "Mark failed",
            "The message did not arrive: the task becomes failed and is not sent again"
            " (you may resend it later).",
        ),
    )
}

UNCERTAIN_RESEND_WARNING = (
    "An uncertain task may already have reached the chat: nobody knows whether Telegram got"
    " the last attempt. Resending it may deliver the message twice."
)


def available(status: str) -> list[Action]:
    return [a for a in ACTIONS.values() if a.allowed_from(status)]
