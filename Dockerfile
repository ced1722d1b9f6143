# One image for every Stock Bazaar service; compose picks the command per service:
#   python -m catalog_worker | python -m order_worker | python -m frontend
# The dependencies (pika, flask, waitress, tenacity, prometheus_client) are pure-Python wheels,
# so no compiler or other build tools are ever installed into the image.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    FRONTEND_HOST=0.0.0.0 \
    FRONTEND_PORT=8000

# Unprivileged runtime user; /data is owned by it so that named volumes mounted
# there start out writable (Docker copies the ownership into a new volume).
RUN groupadd --system --gid 10001 bazaar \
    && useradd --system --uid 10001 --gid bazaar --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin bazaar \
    && mkdir -p /app /data \
    && chown bazaar:bazaar /app /data

# Install the project (non-editable) into site-packages, then drop the sources.
# README.md is needed because setup.cfg reads it as long_description.
COPY setup.cfg pyproject.toml README.md /tmp/src/
COPY broker /tmp/src/broker
COPY runtime /tmp/src/runtime
COPY storage /tmp/src/storage
COPY trading /tmp/src/trading
COPY ledger /tmp/src/ledger
COPY frontend /tmp/src/frontend
COPY catalog_worker /tmp/src/catalog_worker
COPY order_worker /tmp/src/order_worker
COPY client /tmp/src/client
RUN pip install --no-cache-dir /tmp/src \
    && rm -rf /tmp/src

WORKDIR /app
# Numeric uid:gid (= bazaar:bazaar above) so it resolves without /etc/passwd lookups.
USER 10001:10001

# No VOLUME here: the frontend shares this image and needs no state; compose
# mounts the named volumes at /data for the two workers.
# 8000: the frontend's HTTP API; 9100: a worker's metrics when METRICS_PORT=9100 (compose).
EXPOSE 8000 9100

CMD ["python", "-m", "frontend"]
