# The Ponton hub: `docker build -t ponton-hub .` (docs/install-hub.md).
# Two stages: wheels are built where pip and the sources are, the image gets only the
# installed hub and runs as an unprivileged user.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY edge_agent edge_agent
COPY sync_server sync_server
COPY simulators simulators
COPY device_profiles device_profiles
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[hub]'

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ponton-hub --create-home \
        ponton
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'ponton[hub]' \
    && rm -rf /wheels
USER ponton
WORKDIR /var/lib/ponton-hub
ENV PYTHONUNBUFFERED=1 \
    PONTON_HUB_DATA_DIR=/var/lib/ponton-hub
VOLUME ["/var/lib/ponton-hub"]
EXPOSE 8600
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8600/v1/health', timeout=4)"]
ENTRYPOINT ["sync-server"]
# --upgrade-db: the schema is brought to this image's version before the hub listens.
CMD ["serve", "--host", "0.0.0.0", "--port", "8600", "--upgrade-db"]
