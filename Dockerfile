# The basketcast worker image (used by docker-compose.yml's `worker` service).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY offline ./offline
COPY stream ./stream
RUN pip install --no-cache-dir .
ENV BASKETCAST_MODEL_DIR=/app/models/latest
EXPOSE 6066
CMD ["basketcast", "worker"]
