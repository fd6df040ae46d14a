# ragd's container image.
#
#   docker build -t ragd .                           models baked in (/models)
#   docker build --build-arg BAKE_MODELS=0 -t ragd . no models: mount them at /models
#   docker run -p 8080:8080 ragd
#
# The builder runs the same make targets as CI (`make test` runs `make build`
# and `make models`; scripts/deps.sh installs Debian packages and builds the
# pinned llama.cpp), for a portable CPU target instead of the build host's.
# The runtime stage gets only the Debian packages that own the shared
# libraries the binaries link (worked out with ldd + dpkg in the builder),
# curl for HEALTHCHECK, the two binaries, the models and a default config,
# and runs as an unprivileged user.

ARG DEBIAN_IMAGE=debian:12
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${DEBIAN_IMAGE} AS builder
# x86-64-v3 (AVX2) runs on any recent x86 server; `native` ties the image to
# the build machine's CPU.
ARG RAGD_CPU=x86-64-v3
ARG BAKE_MODELS=1
ENV DEBIAN_FRONTEND=noninteractive \
    RAGD_CACHE=/cache \
    RAGD_CPU=${RAGD_CPU}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# What scripts/deps.sh itself needs to run (it installs the rest).
RUN apt-get update \
 && apt-get install -y --no-install-recommends make ca-certificates python3 python3-pip python3-venv curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make build
RUN if [ "${BAKE_MODELS}" = 1 ]; then make models; else rm -rf models && mkdir models; fi
# The runtime's Debian packages: the owners of every shared library linked.
RUN for f in $(ldd build/ragd build/ragd-extract-pdf | awk '$3 ~ /^\// {print $3}' | sort -u); do \
      dpkg -S "$f" 2>/dev/null || dpkg -S "$(readlink -f "$f")" 2>/dev/null || dpkg -S "${f#/usr}"; \
    done | cut -d: -f1 | sort -u >/runtime-packages.txt \
 && install -D -s build/ragd build/ragd-extract-pdf -t /out/bin

FROM ${RUNTIME_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=builder /runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 ragd \
 && useradd --system --uid 10001 --gid ragd --home-dir /data --shell /usr/sbin/nologin ragd \
 && mkdir -p /data /models /etc/ragd \
 && chown ragd:ragd /data
COPY --from=builder /out/bin/ /usr/local/bin/
COPY --from=builder /src/models/ /models/
COPY deploy/docker/ragd.yaml /etc/ragd/ragd.yaml
ENV RAGD_CONFIG=/etc/ragd/ragd.yaml
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["ragd"]
CMD ["serve"]
