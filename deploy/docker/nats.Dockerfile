# authflow-nats:dev — nats-server built from the version pinned in go.mod, FROM scratch:
# no base image is pulled (there is no registry). Built by deploy/build-images.sh, which
# places these files in a temporary context:
#   nats-server    static binary (CGO_ENABLED=0 go build -trimpath github.com/nats-io/nats-server/v2)
#   passwd, group  one unprivileged user
#   data/          an empty directory, owned by that user: the JetStream store. A named
#                  volume mounted here starts with this owner, so the server can write it.
# The configuration is mounted at run time (deploy/nats/*.conf); the image has none.
FROM scratch
COPY passwd group /etc/
COPY --chown=65532:65532 data /data
COPY nats-server /usr/local/bin/nats-server
USER 65532:65532
# 4222 clients, 6222 cluster routes, 8222 HTTP monitoring.
EXPOSE 4222 6222 8222
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/nats-server"]
