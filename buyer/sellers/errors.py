"""One error type for everything a seller can answer badly, whatever its envelope."""

from __future__ import annotations


class SellerError(Exception):
    """A seller call that failed: HTTP status (None for transport faults), the seller's code, its message."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "error", retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "transport"
        return f"{self.code} ({where}): {self.message}"


class SellerTaskPending(SellerError):
    """The seller took an order as an asynchronous task (AdCP ``submitted``/``working``/``input-required``):
    no deal yet, and no failure. The buyer follows ``task_id`` from a periodic task; nothing waits."""

    def __init__(self, *, task_id: str, status: str, message: str = "") -> None:
        said = f": {message}" if message else ""
        super().__init__(f"the seller is reviewing the order (task {task_id}, {status}){said}", code="task_pending")
        self.task_id = task_id
        self.task_status = status
        self.seller_message = message
