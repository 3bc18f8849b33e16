# The serving image: `stagecraft serve --model-dir` as a SageMaker inference container or a KServe predictor.
# Not built by the tests (no container engine runs on the machines they run on); `hadolint` checks it there.
#   docker build -t stagecraft .
#   docker run -p 8080:8080 -v "$PWD/.stagecraft/artifacts/<digest>:/opt/ml/model:ro" stagecraft serve

# Build: a release binary with the Swift runtime linked in, against Debian bookworm's libgit2 (as at run time).
FROM swift:6.3.1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgit2-dev=1.5.* libsqlite3-dev=3.40.* pkg-config=1.8.* \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
RUN swift build -c release --static-swift-stdlib --product stagecraft \
    && install -D "$(swift build -c release --static-swift-stdlib --show-bin-path)/stagecraft" /out/stagecraft

# Run: the binary, the C libraries it links (libgit2, SQLite, libxml2, libcurl) and CA certificates.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates=20230311* curl=7.88.* libcurl4=7.88.* libgit2-1.5=1.5.* libsqlite3-0=3.40.* libxml2=2.9.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /home/stagecraft --create-home stagecraft
COPY --from=build /out/stagecraft /usr/local/bin/stagecraft
USER 10001
WORKDIR /home/stagecraft
# SageMaker runs the image with the argument `serve` (then /opt/ml/model is served on 0.0.0.0, port 8080 or
# SAGEMAKER_BIND_TO_PORT); KServe's runtime passes `serve --model-dir /mnt/models --host 0.0.0.0 --port 8080`.
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${SAGEMAKER_BIND_TO_PORT:-8080}/ping || exit 1"]
ENTRYPOINT ["stagecraft"]
CMD ["serve"]
