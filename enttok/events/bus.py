"""The event stream: every message gets the next C{seq} and goes to every subscriber."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

Message = dict[str, Any]
Subscriber = Callable[[Message], None]

#: After an unclean stop, events sent but not yet recorded may be lost; the
#: stream restarts this far above the last recorded seq so none is reused.
RESTART_GAP = 1_000_000


class EventBus:
    """
    Assigns monotonically increasing C{seq} numbers and fans messages out.

    @param last_recorded: the highest seq recorded in the database.
    """

    log = Logger()

    def __init__(self, last_recorded: int = 0) -> None:
        self.first_seq = last_recorded + RESTART_GAP + 1 if last_recorded else 1
        self.last_recorded_at_start = last_recorded
        self._seq = self.first_seq - 1
        self._subscribers: list[Subscriber] = []

    @property
    def seq(self) -> int:
        """The seq of the last message published."""
        return self._seq

    def publish(self, message: Message) -> Message:
        """Number C{message}, deliver it, and return it (with its C{seq})."""
        self._seq += 1
        message["seq"] = self._seq
        for subscriber in list(self._subscribers):
            try:
                subscriber(message)
            except Exception:
                self.log.failure("event subscriber failed")
        return message

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Deliver every later message to C{subscriber}; returns the unsubscribe call."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe
