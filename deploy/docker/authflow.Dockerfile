# authflow:dev — the authflow binary alone, FROM scratch: no base image is pulled
# (there is no registry), no shell, no package manager. Built by
# deploy/build-images.sh, which places these files in a temporary context:
#   authflow                static binary (CGO_ENABLED=0 go build -trimpath ./cmd/authflow)
#   ca-certificates.crt     the host's CA bundle, for HTTPS to Microsoft Graph and Entra ID
#   passwd, group           one unprivileged user, so tools that resolve the uid work
#   tmp/                    an empty directory, owned by that user
FROM scratch
COPY passwd group /etc/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --chown=65532:65532 tmp /tmp
COPY authflow /usr/local/bin/authflow
# Go reads SSL_CERT_FILE first; set it so the bundle is found whatever the lookup order.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/authflow"]
