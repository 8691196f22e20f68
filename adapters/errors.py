"""The adapters' error tree: foreign library errors are translated here, at the boundary.

    TransportError                  the bytes did not get where they were going
    ├── BrokerUnavailable           no usable connection/channel to RabbitMQ right now
    ├── PublishFailed               the broker did not take responsibility for a message
    │   ├── PublishNacked           basic.nack from the broker (e.g. a resource alarm, queue limit)
    │   ├── PublishReturned         unroutable with `mandatory`: no queue is bound for it
    │   └── ConfirmTimeout          no confirm within the deadline; the outcome is unknown
    └── DestinationError            a destination could not be reached or did not answer
        ├── DestinationTimeout      it did not answer within the deadline
        └── DestinationRefused      it answered, refusing (an HTTP status, a MESH error)

Callers decide policy (retry, reject, AR/503); adapters only say what happened.
"""

from __future__ import annotations


class TransportError(Exception):
    """Base of every error an adapter raises."""


class BrokerUnavailable(TransportError):
    pass


class PublishFailed(TransportError):
    pass


class PublishNacked(PublishFailed):
    pass


class PublishReturned(PublishFailed):
    pass


class ConfirmTimeout(PublishFailed):
    pass


class DestinationError(TransportError):
    pass


class DestinationTimeout(DestinationError):
    pass


class DestinationRefused(DestinationError):
    """The destination answered and refused: `status` is its HTTP status when known, `detail`
    its own words (bounded)."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"refused ({status}): {detail}" if status else f"refused: {detail}")
        self.status = status
        self.detail = detail
