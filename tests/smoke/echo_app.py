"""A minimal Faust app for the smoke test: upper-cases every value from one topic to another.

Run as a real worker: `python tests/smoke/echo_app.py worker`, configured by SMOKE_* variables.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["SMOKE_APP_ID"],
    broker=f"kafka://{os.environ['SMOKE_BOOTSTRAP']}",
    store="memory://",
    value_serializer="raw",
    web_enabled=False,
    topic_partitions=2,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["SMOKE_SOURCE"], value_serializer="raw")
sink = app.topic(os.environ["SMOKE_SINK"], value_serializer="raw")


@app.agent(source)
async def upper(stream: faust.StreamT) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value.upper())


if __name__ == "__main__":
    app.main()
