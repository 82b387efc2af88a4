"""OPC UA without loss at a crash: acknowledge only what is stored, take the subscription over.

OPC UA acknowledges NotificationMessages inside the protocol: each PublishRequest carries the
sequence numbers the client is done with, and the server keeps every message not yet
acknowledged in its retransmission queue (Part 4, 5.13.1.5). asyncua acknowledges a message
as soon as it has decoded it, so changes the worker held in memory when it was SIGKILLed were
gone for good (issue 11's soak: 1,200 changes per run). Here:

- ``AckLedger``: a message's sequence number is acknowledged only after the delivery that
  carries its changes has been written (the worker's ``ack``), in the next PublishRequest.
- ``SubscriptionState``: the subscription's id and its monitored items' client handles are
  kept in a small file. A worker that starts again (or a source whose connection dropped)
  opens a new session and asks the server for the same subscription (TransferSubscriptions,
  5.13.7); the server then republishes what was not acknowledged (Republish, 5.13.6), and
  the changes made while no worker was connected, which it kept in each monitored item's
  queue (``queue_size`` per tag), follow. What was stored but not yet acknowledged comes
  again; the store's first-write-wins key (asset, signal, ts) drops it.

A server hands a subscription over only to the same user (Part 4, 5.13.7): a user name, or
for anonymous access a signed channel with the same application URI. Where it refuses
(BadUserAccessDenied, e.g. anonymous over an unsecured channel), the source subscribes afresh
and says once that changes in flight at a crash can be lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import ua

from axhub.core.json_files import write_json_atomic

log = logging.getLogger(__name__)

AckKey = tuple[int, int]  # (subscription id, sequence number)


class AckLedger:
    """Sequence numbers from received to acknowledged, through the store.

    ``received`` and ``hand_over`` run on the OPC UA event loop (a message's changes and its
    sequence number join the rows of the same hand-over, as one call); ``durable`` runs on the
    worker's thread after its write; ``take`` on the event loop when a PublishRequest goes out.
    """

    def __init__(self) -> None:
        self._received: list[AckKey] = []
        self._durable: list[AckKey] = []
        self._lock = threading.Lock()

    def received(self, subscription_id: int, sequence: int) -> None:
        self._received.append((subscription_id, sequence))

    def hand_over(self) -> Callable[[], None]:
        """The ack of the delivery now handed over: its messages may then be forgotten."""
        keys, self._received = self._received, []
        return lambda: self.durable(keys)

    def durable(self, keys: list[AckKey]) -> None:
        if keys:
            with self._lock:
                self._durable.extend(keys)

    def take(self) -> list[ua.SubscriptionAcknowledgement]:
        """Acknowledgements for the next PublishRequest (given back if it is not sent)."""
        with self._lock:
            keys, self._durable = self._durable, []
        return [ua.SubscriptionAcknowledgement(SubscriptionId=s, SequenceNumber=n) for s, n in keys]

    def give_back(self, acks: list[ua.SubscriptionAcknowledgement]) -> None:
        self.durable([(int(a.SubscriptionId), int(a.SequenceNumber)) for a in acks])

    def forget(self, subscription_id: int) -> None:
        """Drop what belongs to a subscription the server no longer has."""
        self._received = [k for k in self._received if k[0] != subscription_id]
        with self._lock:
            self._durable = [k for k in self._durable if k[0] != subscription_id]


@dataclass(frozen=True)
class SubscriptionState:
    """What a new session needs to take a subscription over: its id and what each client
    handle stands for (the server keeps the handles we gave; the NodeIds are ours to know)."""

    endpoint: str
    subscription_id: int
    handles: dict[int, str]  # client handle -> NodeId string

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            path,
            {
                "endpoint": self.endpoint,
                "subscription_id": self.subscription_id,
                "handles": {str(h): n for h, n in self.handles.items()},
            },
        )

    @classmethod
    def load(cls, path: Path) -> SubscriptionState | None:
        """The saved state, or None (none saved, or unreadable: then we subscribe afresh)."""
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                str(raw["endpoint"]),
                int(raw["subscription_id"]),
                {int(h): str(n) for h, n in raw["handles"].items()},
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("OPC UA: ignoring unreadable subscription state %s (%s)", path.name, exc)
            return None


def state_path(state_dir: Path, endpoint: str, client: str = "") -> Path:
    """One file per server (and per worker of a shared group, by its client id)."""
    digest = hashlib.sha256(f"{endpoint}\n{client}".encode()).hexdigest()[:16]
    return state_dir / f"opcua-{digest}.json"


async def transfer(session: Any, subscription_id: int) -> tuple[list[int] | None, str]:
    """Take the subscription over into ``session``: (sequence numbers the server still holds,
    "") when it agreed, else (None, the server's reason)."""
    params = ua.TransferSubscriptionsParameters(SubscriptionIds=[subscription_id], SendInitialValues=False)
    try:
        results = await session.transfer_subscriptions(params)
    except ua.UaStatusCodeError as exc:
        return None, ua.status_codes.get_name_and_doc(exc.code)[0] if exc.code else str(exc)
    if not results:
        return None, "no result"
    status = results[0].StatusCode
    if status is not None and not status.is_good():
        return None, status.name
    return sorted(int(n) for n in results[0].AvailableSequenceNumbers or []), ""
