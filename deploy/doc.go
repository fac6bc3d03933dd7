// Package deploy holds no Go code: it is the home of the deployment files of authflow and
// of the test that keeps them valid.
//
// The files:
//
//   - build-images.sh and docker/: the two local images, authflow:dev and
//     authflow-nats:dev, both FROM scratch (no registry is needed or used);
//   - compose.yaml, nats/nats-{1,2,3}.conf, emulator-seed.json, policy/: a local
//     three-node JetStream cluster with the Graph emulator and two workers;
//   - nats/accounts.conf and helm/nats-values.yaml: NATS accounts and permissions, and
//     values for the official NATS Helm chart;
//   - k8s/: the worker on Kubernetes (namespace authflow) as a kustomize layout: base/,
//     one overlay per Graph credential, the optional components/monitoring;
//   - helm/authflow/: the Helm chart of the worker;
//   - secrets/: generated development secrets (never committed);
//   - grafana/: the dashboard over the worker's metrics.
//
// deploy_test.go parses every manifest, checks them against each other (selectors,
// references, ports, flags), loads every NATS configuration with the server's own parser
// and enforces the permissions of accounts.conf against real clients of an in-process
// server; limits_test.go keeps the message size limits in step. kustomize_test.go builds
// every overlay with kustomize and helm_test.go renders the chart with Helm, both decoded
// strictly into the typed k8s.io/api structs; only these test files import Kubernetes
// modules. containers_test.go starts the compose topology from the locally built images
// with testcontainers-go and drives it with authflow send. See README.md in this
// directory for how to use the files.
package deploy
