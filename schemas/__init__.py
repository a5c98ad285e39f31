"""basketcast's contracts: the events in and out of Kafka, as pydantic v2 models."""

from schemas.invoice import InvoiceEvent, InvoiceLine

__all__ = ["InvoiceEvent", "InvoiceLine"]
