# The basketcast worker image (used by docker-compose.yml's `worker` service).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY offline ./offline
COPY stream ./stream
# cargo builds the native reader (stream/native); without it the worker takes the slower
# Python path (it logs event=native_reader_missing)
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates gcc \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
    && PATH="/root/.cargo/bin:$PATH" pip install --no-cache-dir . \
    && rm -rf /root/.rustup /root/.cargo /var/lib/apt/lists/* \
    && apt-get purge -y curl gcc && apt-get autoremove -y
ENV BASKETCAST_MODEL_DIR=/app/models/latest
EXPOSE 6066
CMD ["basketcast", "worker"]
