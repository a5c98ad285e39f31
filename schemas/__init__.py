"""basketcast's contracts: the events in and out of Kafka, as pydantic v2 models."""

from schemas.dead_letter import DeadLetter
from schemas.invoice import InvoiceEvent, InvoiceLine
from schemas.scored import CustomerScored, score_event_id

__all__ = ["CustomerScored", "DeadLetter", "InvoiceEvent", "InvoiceLine", "score_event_id"]
