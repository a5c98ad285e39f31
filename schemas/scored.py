"""The output contract: one `CustomerScored` per customer, emitted at their first purchase.

Topic `customer-scores`, key = customer id (UTF-8), value = this model as JSON.
`event_id` is deterministic (see `score_event_id`): the same model version, customer and
invoice always give the same id, so a consumer can drop re-deliveries by id.

>>> eid = score_event_id("m1", "13085", "489434")
>>> eid == score_event_id("m1", "13085", "489434"), eid == score_event_id("m2", "13085", "489434")
(True, False)
>>> s = CustomerScored(event_id=eid, customer_id="13085", invoice_id="489434",
...     first_purchase_at="2009-12-01T07:45:00", segment=2, segment_label="gift shops",
...     p_repeat=0.71, expected_orders=3.2, expected_spend=812.5, horizon_days=365,
...     model_version="m1", scored_at="2026-01-01T00:00:00Z")
>>> CustomerScored.model_validate_json(s.model_dump_json()) == s
True
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

#: Namespace of the uuid5 event ids (fixed forever: changing it changes every id).
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d2e-5b0a-4c53-9a43-2b1b8f0c7e10")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


def score_event_id(model_version: str, customer_id: str, invoice_id: str) -> str:
    """Deterministic id of the score of `customer_id`'s first purchase `invoice_id`: the uuid5
    (RFC 4122) of the three in `EVENT_ID_NAMESPACE`.

    `uuid.uuid5`'s own steps, with the namespace's bytes taken once (`uuid.uuid5` converts
    the namespace on every call: 3.5 -> 2.6 us an id; the worker makes one per new customer):

    >>> name = "m1\x1f13085\x1f489434"
    >>> score_event_id("m1", "13085", "489434") == str(uuid.uuid5(EVENT_ID_NAMESPACE, name))
    True
    """
    name = f"{model_version}\x1f{customer_id}\x1f{invoice_id}"
    digest = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


class OnlineScore(BaseModel):
    """The online model's forecast for the same customer (see `stream.online_model`).

    `corrected` False: the online correction was not better than the batch model over the
    recent matured labels, so these are the batch figures passed through.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    p_repeat: float = Field(ge=0.0, le=1.0)
    expected_orders: float = Field(ge=0.0)
    expected_spend: float = Field(
        ge=0.0, description="spend correction aimed at the absolute error (median-like)")
    expected_spend_mean: float = Field(
        ge=0.0, description="batch spend x recent realised/forecast spend: calibrated in the "
                            "mean, for totals and budgets")
    corrected: bool
    model_version: int = Field(ge=0, description="version of the online model in Redis")


class CustomerScored(BaseModel):
    """A new customer's segment and next-horizon forecast, made at their first purchase."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    event_id: str = Field(description="uuid5 of model_version, customer_id, invoice_id")
    customer_id: str
    invoice_id: str = Field(description="the first purchase")
    first_purchase_at: datetime
    segment: int = Field(ge=0)
    segment_label: str
    p_repeat: float = Field(ge=0.0, le=1.0, description="probability of another order")
    expected_orders: float = Field(ge=0.0, description="orders expected over the horizon")
    expected_spend: float = Field(description="spend expected over the horizon (GBP)")
    horizon_days: int = Field(gt=0)
    model_version: str = Field(description="version of the batch model bundle")
    scored_at: datetime = Field(description="wall-clock time the score was first made")
    online: OnlineScore | None = Field(
        default=None, description="the online model's forecast; None before it learned")
    models: list[str] = Field(
        default_factory=list,
        description="the model(s) behind the score: 'batch:<version>' and, when the online "
                    "correction is in use, 'online:<version>'")
