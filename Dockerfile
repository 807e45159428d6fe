# syntax=docker/dockerfile:1
# Build: docker build -t crm-api .
# Run:   docker run -p 8000:8000 -e CRM_DATABASE_URL=postgresql+asyncpg://user:pass@db/crm crm-api

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CRM_WORKERS=2
RUN useradd --create-home --uid 10001 crm
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
USER crm
WORKDIR /home/crm
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
# Migrate first (a no-op when already at head), then serve with several workers.
CMD ["sh", "-c", "crm-api migrate && exec crm-api serve --host 0.0.0.0 --port 8000 --workers \"$CRM_WORKERS\""]
