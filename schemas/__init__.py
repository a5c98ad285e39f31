"""basketcast's contracts: the events in and out of Kafka, as pydantic v2 models."""

from schemas.dead_letter import DeadLetter
from schemas.drift import ModelDrift
from schemas.invoice import InvoiceEvent, InvoiceLine
from schemas.scored import CustomerScored, OnlineScore, score_event_id

__all__ = [
    "CustomerScored", "DeadLetter", "InvoiceEvent", "InvoiceLine", "ModelDrift", "OnlineScore",
    "score_event_id",
]
