"""moto's SQS made thread-safe, and made to cost what SQS costs as a queue grows.

moto 5 keeps a queue's messages in a list and takes no lock. Every `ReceiveMessage` builds the
list of visible messages and, for each message it returns, recomputes every queue attribute
(the approximate counts walk the list again); every `DeleteMessage` and
`ChangeMessageVisibility` walks the list for the receipt handle. A backlog of N messages (a
2,500-event batch, a campaign's sends) therefore costs N² to drain, and concurrent requests of
its threaded server can break its iterations ("Set changed size during iteration"). Deleted
receipt handles are kept forever.

Here each queue keeps its messages in an ordered dict, a heap of when each becomes receivable
(the later of its visibility and its delay), and a map of receipt handles, all under the queue's
lock; receivers wait on a condition that sends and visibility changes signal instead of sleeping
in a loop. Standard queues are received from the heap; FIFO queues keep moto's own receive
(ordering by group), which works on the same container. Semantics are SQS's as moto implements
them: visibility timeouts, delays, receive counts, redrive to the dead-letter queue when a
message that was received `maxReceiveCount` times would be received again, retention, and
`ReceiptHandleIsInvalid` for a handle never issued (a recently deleted one is accepted again).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import heapq
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from moto.core.utils import unix_time_millis
from moto.sqs import models as sqs_models
from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend

_RECENTLY_DELETED = 100_000  # receipt handles remembered after a delete, per queue
_MAX_VISIBILITY_S = 43_200

_installed = False
_install_lock = threading.Lock()
_state_lock = threading.Lock()
# Called with (queue name, message, present) under the queue's lock when a message arrives or
# leaves: how the local cloud's persistence learns what to write (see persistence.py).
MessageListener = Callable[[str, Message, bool], None]
_listeners: list[MessageListener] = []


def on_message_change(listener: MessageListener) -> None:
    _listeners.append(listener)


def remove_message_listener(listener: MessageListener) -> None:
    with contextlib.suppress(ValueError):
        _listeners.remove(listener)


def install() -> None:
    """Patch moto's SQS (idempotent; process-wide)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _patch()
        _installed = True


class _Messages:
    """A queue's messages: the container moto's code sees as `queue._messages`, plus the indexes."""

    def __init__(self, messages: Iterable[Message] = (), queue_name: str = "") -> None:
        self.queue_name = queue_name
        self.lock = threading.RLock()
        self.arrived = threading.Condition(self.lock)
        self.live: OrderedDict[str, Message] = OrderedDict()
        self.ready: list[tuple[float, int, Message]] = []
        self.receipts: dict[str, Message] = {}
        self.deleted: OrderedDict[str, None] = OrderedDict()
        self._sequence = itertools.count()
        for message in messages:
            self.append(message)

    # -- the list moto's own code uses (FIFO receive, dedupe, attributes)
    def append(self, message: Message) -> None:
        with self.lock:
            self.live[message.id] = message
            self.schedule(message)
            self._report(message, present=True)

    def remove(self, message: Message) -> None:
        with self.lock:
            if self.live.pop(message.id, None) is None:
                raise ValueError(f"{message.id} is not in the queue")
            for handle in message.all_receipt_handles:
                if handle:
                    self.receipts.pop(handle, None)
            self._report(message, present=False)

    def _report(self, message: Message, *, present: bool) -> None:
        for listener in list(_listeners):
            listener(self.queue_name, message, present)

    def __iter__(self) -> Iterator[Message]:
        with self.lock:
            return iter(list(self.live.values()))

    def __len__(self) -> int:
        return len(self.live)

    def __contains__(self, message: object) -> bool:
        return isinstance(message, Message) and self.live.get(message.id) is message

    # -- the indexes
    def schedule(self, message: Message) -> None:
        """(Re)file the message by when it can next be received (stale entries are skipped later)."""
        heapq.heappush(self.ready, (_available_at(message), next(self._sequence), message))
        self.arrived.notify_all()

    def forget(self, message: Message) -> None:
        if self.live.pop(message.id, None) is not None:
            self._report(message, present=False)
        for handle in message.all_receipt_handles:
            if handle:
                self.receipts.pop(handle, None)
                self.deleted[handle] = None
        while len(self.deleted) > _RECENTLY_DELETED:
            self.deleted.popitem(last=False)

    def holder(self, receipt_handle: str) -> Message | None:
        """The message a receipt handle was issued for (FIFO receives are moto's: look them up)."""
        message = self.receipts.get(receipt_handle)
        if message is None:
            message = next((m for m in self.live.values() if m.had_receipt_handle(receipt_handle)), None)
        return message

    def next_due(self) -> float | None:
        while self.ready:
            at, _, message = self.ready[0]
            if self.live.get(message.id) is message and at == _available_at(message):
                return at
            heapq.heappop(self.ready)  # deleted, or re-filed under a later time
        return None


def _available_at(message: Message) -> float:
    return float(max(message.visible_at, message.delayed_until))


def _state(queue: Queue) -> _Messages:
    state: _Messages | None = queue.__dict__.get("_localcloud_messages")
    if state is None:
        with _state_lock:
            state = queue.__dict__.get("_localcloud_messages")
            if state is None:
                state = _Messages(queue_name=queue.__dict__.get("_name", ""))
                queue.__dict__["_localcloud_messages"] = state
    return state


def _set_messages(queue: Queue, messages: Iterable[Message]) -> None:
    state = _state(queue)
    with state.lock:
        for message in list(state.live.values()):
            state.forget(message)
        for message in messages:
            state.append(message)
        state.arrived.notify_all()


def _patch() -> None:
    Queue._messages = property(_state, _set_messages)  # type: ignore[assignment]
    original_receive = SQSBackend.receive_message

    def messages(self: Queue) -> list[Message]:
        return [m for m in _state(self) if m.visible and not m.delayed]

    # moto computes the approximate counts, walking every message, whenever anything reads
    # queue.attributes, and its SendMessage does so for each message it sends. GetQueueAttributes
    # still counts exactly; moto's internal reads take a count at most a second old, so a send
    # does not cost the backlog.
    def approximate_number_of_messages(self: Queue) -> int:
        return _approximate_counts(self)[0]

    def approximate_number_of_messages_not_visible(self: Queue) -> int:
        return _approximate_counts(self)[1]

    def approximate_number_of_messages_delayed(self: Queue) -> int:
        return _approximate_counts(self)[2]

    def delete_message(self: Queue, receipt_handle: str) -> None:
        state = _state(self)
        with state.lock:
            message = state.holder(receipt_handle)
            if message is None:
                if receipt_handle in state.deleted:
                    return  # deleting twice is allowed
                raise ReceiptHandleIsInvalid()
            state.forget(message)
            self._pending_messages.discard(message)

    def wait_for_messages(self: Queue, timeout: int) -> None:
        state = _state(self)
        with state.arrived:
            state.arrived.wait(timeout)

    @functools.wraps(original_receive)
    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Message]:
        queue = self.get_queue(queue_name)
        if queue.fifo_queue:
            return original_receive(
                self, queue_name, count, wait_seconds_timeout, visibility_timeout, message_attribute_names
            )
        state = _state(queue)
        names = message_attribute_names or []
        deadline = unix_time_millis() + (wait_seconds_timeout or 0) * 1000
        with state.lock:
            while True:
                received = _receive_due(queue, state, count, visibility_timeout, names)
                now = unix_time_millis()
                if received or now >= deadline:
                    return received
                due = state.next_due()
                wake = deadline if due is None else min(deadline, due + 1)
                state.arrived.wait(max(0.001, (wake - now) / 1000))

    def change_message_visibility(
        self: SQSBackend, queue_name: str, receipt_handle: str, visibility_timeout: int
    ) -> None:
        queue = self.get_queue(queue_name)
        state = _state(queue)
        with state.lock:
            message = state.holder(receipt_handle)
            if message is None:
                raise ReceiptHandleIsInvalid
            timeout_ms = int(visibility_timeout) * 1000
            if unix_time_millis() + timeout_ms - message.sent_timestamp > _MAX_VISIBILITY_S * 1000:  # type: ignore[operator]
                raise InvalidParameterValue(
                    f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                    f"VisibilityTimeout for the message is beyond the limit [{_MAX_VISIBILITY_S} seconds]"
                )
            message.change_visibility(visibility_timeout)
            if message.visible:
                queue._pending_messages.discard(message)
            state.schedule(message)

    patched: dict[str, Callable[..., Any] | property] = {
        "messages": property(messages),
        "approximate_number_of_messages": property(approximate_number_of_messages),
        "approximate_number_of_messages_not_visible": property(approximate_number_of_messages_not_visible),
        "approximate_number_of_messages_delayed": property(approximate_number_of_messages_delayed),
        "delete_message": delete_message,
        "wait_for_messages": wait_for_messages,
    }
    for name, value in patched.items():
        setattr(Queue, name, value)
    original_attributes = SQSBackend.get_queue_attributes

    @functools.wraps(original_attributes)
    def get_queue_attributes(self: SQSBackend, *args: Any, **kwargs: Any) -> Any:
        _exact.on = True
        try:
            return original_attributes(self, *args, **kwargs)
        finally:
            _exact.on = False

    SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]


def _receive_due(
    queue: Queue, state: _Messages, count: int, visibility_timeout: int, names: list[str]
) -> list[Message]:
    """Take up to `count` receivable messages (the queue's lock is held)."""
    now = unix_time_millis()
    retention_ms = int(queue.message_retention_period) * 1000  # type: ignore[attr-defined]
    redrive = queue.redrive_policy if queue.dead_letter_queue is not None else None
    received: list[Message] = []
    taken: set[str] = set()
    while len(received) < count:
        due = state.next_due()
        if due is None or due >= now:
            break
        _, _, message = heapq.heappop(state.ready)
        if message.id in taken:
            continue  # filed twice under the same time (a visibility change to the same instant)
        if message.sent_timestamp + retention_ms <= now:  # type: ignore[operator]
            state.forget(message)  # past the retention period: SQS deletes it
            continue
        if redrive and message.approximate_receive_count >= redrive["maxReceiveCount"]:
            state.forget(message)
            queue._pending_messages.discard(message)
            queue.dead_letter_queue.add_message(message)  # type: ignore[union-attr]
            continue
        taken.add(message.id)
        queue._pending_messages.add(message)
        message.mark_received(visibility_timeout=visibility_timeout)
        state.receipts[message.receipt_handle] = message  # type: ignore[index]
        state.schedule(message)
        answer = copy.deepcopy(message)
        sqs_models._filter_message_attributes(answer, names)
        received.append(answer)
    return received


_COUNTS_TTL_MS = 1_000
_exact = threading.local()


def _approximate_counts(queue: Queue) -> tuple[int, int, int]:
    state = _state(queue)
    now = unix_time_millis()
    cached: tuple[float, tuple[int, int, int]] | None = getattr(state, "counts", None)
    if cached is None or now - cached[0] > _COUNTS_TTL_MS or getattr(_exact, "on", False):
        cached = (now, depth(queue))
        state.counts = cached  # type: ignore[attr-defined]
    return cached[1]


def depth(queue: Queue) -> tuple[int, int, int]:
    """(visible, in flight, delayed) without going through the API: what `wait_idle` polls."""
    now = unix_time_millis()
    visible = in_flight = delayed = 0
    for message in _state(queue):
        if message.delayed_until > now:
            delayed += 1
        elif message.visible_at >= now:
            in_flight += 1
        else:
            visible += 1
    return visible, in_flight, delayed
