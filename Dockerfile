# The crm-erp-sync service image (docker-compose.yml builds it). Dependencies come from the lock
# file, so the image runs exactly what the tests ran; the service runs as an unprivileged user.
FROM python:3.11-slim
WORKDIR /srv/crm-erp-sync
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
COPY avro ./avro
COPY topics ./topics
COPY local-platform ./local-platform
RUN pip install --no-cache-dir --no-deps -e . \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin crm-erp-sync \
 && mkdir -p /var/lib/crm-erp-sync /srv/crm-erp-sync/.platform \
 && chown crm-erp-sync /var/lib/crm-erp-sync /srv/crm-erp-sync/.platform
USER 10001
ENTRYPOINT ["crm-erp-sync"]
CMD ["worker"]
