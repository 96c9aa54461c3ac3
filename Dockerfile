# The crm-erp-sync service image (docker-compose.yml builds it).
FROM python:3.11-slim
WORKDIR /srv/crm-erp-sync
COPY pyproject.toml README.md ./
COPY app ./app
COPY avro ./avro
COPY topics ./topics
COPY local-platform ./local-platform
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["crm-erp-sync"]
CMD ["worker"]
