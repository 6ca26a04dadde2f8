# The control plane image: `docker build -t ai-xds-controlplane:0.1.0 .`
# Stage 1 builds the package's wheel; stage 2 installs it with its runtime dependencies into a venv on a
# slim Python base, with no compiler and no build tools, and runs it as a non-root user. The steps are
# image/install.sh's, which tests/test_image.py runs too.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controlplane ./controlplane
COPY envoy ./envoy
COPY image/install.sh /usr/local/bin/install-controlplane
RUN PIP_NO_CACHE_DIR=1 install-controlplane wheel /src /wheels

FROM ${PYTHON_IMAGE}
COPY image/install.sh /usr/local/bin/install-controlplane
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    PIP_NO_CACHE_DIR=1 install-controlplane venv /opt/controlplane /wheels \
    && rm /usr/local/bin/install-controlplane
ENV PATH=/opt/controlplane/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532: the conventional "nonroot" user id (the Helm chart's Pod security context uses it too).
USER 65532:65532
EXPOSE 18000 19000
ENTRYPOINT ["controlplane"]
CMD ["serve", "--kubernetes"]
