# lstm-ae: the `serve` daemon with ONNX Runtime and the default model.
#
#   cargo build --release                # the binary this image ships (see stage 1)
#   scripts/setup.sh                     # ONNX Runtime 1.32.0 into .local/ (sha256-pinned)
#   deploy/docker/base-image.sh          # the base image, made locally from Debian packages
#   docker build -t lstm-ae:latest .
#   docker run --rm --network host -e LSTM_AE__KAFKA__BROKERS=127.0.0.1:9092 lstm-ae:latest
#
# Stage 1 (assemble) compiles nothing. A Rust toolchain cannot be fetched
# inside a build here (no registry but the package ones is reachable), so it
# takes the release binary built on the host from the build context
# (target/release/lstm-ae; build on Debian 12 or older so its glibc matches
# the base image's), checks the ONNX Runtime library against the same sha256
# pin as scripts/setup.sh, and collects into /rootfs the binary, the library,
# the shared libraries both link (found by ldd), CA certificates (TLS to
# brokers), the default model and the configuration.
# Stage 2 is that /rootfs alone, FROM scratch: no shell, no package manager,
# nothing to patch but what the daemon runs. The health check is the binary
# itself (`lstm-ae healthcheck`, one HTTP GET), so no curl is needed.
#
# Configuration: /etc/lstm-ae/serve.toml (deploy/docker/serve.toml; mount
# your own over it) and LSTM_AE__SECTION__KEY environment variables, which
# win over the file.

# The base: Debian 12 minbase made by deploy/docker/base-image.sh (tag
# lstm-ae-base:bookworm). Where a registry is reachable,
# --build-arg BASE=debian:bookworm-slim works too.
ARG BASE=lstm-ae-base:bookworm

FROM ${BASE} AS assemble
ARG ORT_VERSION=1.32.0
# sha256 of onnxruntime/capi/libonnxruntime.so.1.32.0 in the PyPI wheel
# onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl (scripts/setup.sh's ORT_LIB_SHA256).
ARG ORT_SHA256=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY target/release/lstm-ae /staging/lstm-ae
COPY .local/onnxruntime/lib/libonnxruntime.so.${ORT_VERSION} /staging/libonnxruntime.so
COPY models/machine_temperature/model.onnx models/machine_temperature/manifest.json /rootfs/usr/share/lstm-ae/models/machine_temperature/
COPY deploy/docker/serve.toml /rootfs/etc/lstm-ae/serve.toml
RUN echo "${ORT_SHA256}  /staging/libonnxruntime.so" | sha256sum --check --strict \
 && install -D -m 0755 /staging/lstm-ae /rootfs/usr/local/bin/lstm-ae \
 && install -D -m 0644 /staging/libonnxruntime.so /rootfs/usr/lib/lstm-ae/libonnxruntime.so \
 && ldd /staging/lstm-ae /staging/libonnxruntime.so \
    | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib/ {print $1}' | sort -u \
    | while read -r lib; do install -D -m 0755 "$(readlink -f "$lib")" "/rootfs$lib"; done \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nlstm-ae:x:10001:10001:lstm-ae:/nonexistent:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nlstm-ae:x:10001:\n' > /rootfs/etc/group \
 && install -d -m 1777 /rootfs/tmp \
 && /rootfs/usr/local/bin/lstm-ae --version

FROM scratch
COPY --from=assemble /rootfs/ /
ENV ORT_DYLIB_PATH=/usr/lib/lstm-ae/libonnxruntime.so \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# Non-root, numeric so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /usr/share/lstm-ae
EXPOSE 9898
# SIGTERM drains: scores what is batched, waits for acks up to
# serve.drain_timeout_ms (10 s), commits, exits 0. Give it longer than that
# (`docker stop -t 30`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/lstm-ae", "healthcheck", "--config", "/etc/lstm-ae/serve.toml"]
ENTRYPOINT ["/usr/local/bin/lstm-ae"]
CMD ["serve", "--config", "/etc/lstm-ae/serve.toml"]
