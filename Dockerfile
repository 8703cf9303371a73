# The toolhive-operator image: both processes (`run` for the operator, `discovery` for namespace
# discovery) from one installed package. Small (slim base, no compilers, no pip cache), non-root.
# Build: docker build -t ghcr.io/toolhive-operator/toolhive-operator:0.1.0 .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/toolhive
COPY pyproject.toml README.md /src/
COPY toolhive /src/toolhive
COPY discovery /src/discovery
RUN /opt/toolhive/bin/pip install /src \
    && find /opt/toolhive -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
LABEL org.opencontainers.image.title="toolhive-operator" \
      org.opencontainers.image.description="ToolHive MCPServer operator with label-driven namespace discovery" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/toolhive /opt/toolhive
# The chart mounts a read-only root filesystem: no bytecode writes, unbuffered logs.
ENV PATH=/opt/toolhive/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532 is the conventional "nonroot" id; the chart's securityContext uses the same numeric user.
USER 65532:65532
ENTRYPOINT ["toolhive-operator"]
CMD ["run"]
