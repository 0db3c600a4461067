# device-bridge as a container: the device file is mounted at /etc/device-bridge/devices.yaml
#   docker build -t device-bridge .
#   docker run -p 5000:5000 -v ./devices.yaml:/etc/device-bridge/devices.yaml:ro \
#     --device /dev/ttyUSB0 device-bridge
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bridge bridge
COPY drivers drivers
COPY simulators simulators
# the wheel and every wheel the service needs (the `service` extra), all installed below
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[service]'

FROM python:3.11-slim
# dialout: the group that owns serial ports (/dev/ttyUSB*, /dev/ttyACM*) on Debian hosts
RUN useradd --system --uid 10001 --gid dialout --no-create-home --shell /usr/sbin/nologin bridge
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The MQTT outbox (used when BRIDGE_MQTT_URL is set) lives on a volume, so that readings
# waiting for the broker survive the container being replaced.
RUN mkdir -p /var/lib/device-bridge && chown 10001:20 /var/lib/device-bridge
VOLUME /var/lib/device-bridge
ENV BRIDGE_HOST=0.0.0.0 \
    BRIDGE_PORT=5000 \
    BRIDGE_CONFIG=/etc/device-bridge/devices.yaml \
    BRIDGE_MQTT_OUTBOX=/var/lib/device-bridge/outbox.sqlite \
    PYTHONUNBUFFERED=1
# numeric, so that the host and Kubernetes can tell it is not root (20 = dialout)
USER 10001:20
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s%s/healthz' % (os.environ.get('BRIDGE_PORT', '5000'), os.environ.get('BRIDGE_ROOT_PATH', '')), timeout=4)"]
ENTRYPOINT ["device-bridge"]
CMD ["run"]
