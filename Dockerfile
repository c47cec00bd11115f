# syntax=docker/dockerfile:1
# Build a wheel with its pinned dependencies, then run it on a slim image as a non-root user.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY sessiongraph ./sessiongraph
# Wheels of the locked dependency set, then of sessiongraph itself without re-resolving.
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.lock \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SESSIONGRAPH_WORKERS=1
RUN groupadd --system sessiongraph && useradd --system --gid sessiongraph --no-create-home sessiongraph
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --no-index --find-links=/wheels -r /tmp/requirements.lock \
 && pip install --no-cache-dir --no-index --no-deps --find-links=/wheels sessiongraph \
 && rm -rf /wheels /tmp/requirements.lock
USER sessiongraph
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["sessiongraph"]
# Real upstreams by default; `docker run … serve --sandbox --host 0.0.0.0` for the emulators.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
