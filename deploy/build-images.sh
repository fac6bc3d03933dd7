#!/usr/bin/env bash
# Builds the two local images, both FROM scratch, from binaries compiled on this host:
#   authflow:dev       ./cmd/authflow
#   authflow-nats:dev  nats-server at the version go.mod pins (github.com/nats-io/nats-server/v2)
# No image is ever pulled: there is no registry here, and scratch needs none.
#
# Usage: deploy/build-images.sh            (from anywhere; `make images` calls it)
# Environment:
#   AUTHFLOW_IMAGE   tag of the worker image   (default authflow:dev)
#   NATS_IMAGE       tag of the NATS image     (default authflow-nats:dev)
#   GO               the go command            (default go)
#   GOARCH           target architecture       (default: the host's)
#   CA_BUNDLE        CA certificates to copy   (default /etc/ssl/certs/ca-certificates.crt)
#
# It also makes the local cluster's development keys once: deploy/secrets/seal.seed, the seed
# both compose workers seal secrets with (AUTHFLOW_SEAL_KEY_FILE), and
# deploy/secrets/ingress-<source>.seed, the keys the compose ingress signs each source's events
# with. They are generated on this machine, never committed (deploy/secrets/.gitignore), and
# kept across runs so their public keys stay the same; delete one to get a new one.
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$deploy_dir/.." && pwd)

AUTHFLOW_IMAGE=${AUTHFLOW_IMAGE:-authflow:dev}
NATS_IMAGE=${NATS_IMAGE:-authflow-nats:dev}
GO=${GO:-go}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

die() {
	echo "build-images: $*" >&2
	exit 1
}

command -v docker >/dev/null 2>&1 || die "docker not found"
command -v "$GO" >/dev/null 2>&1 || die "$GO not found"
[[ -r $CA_BUNDLE ]] || die "CA bundle $CA_BUNDLE not readable (set CA_BUNDLE)"

# The images are Linux images whatever the host; static, so they run on scratch.
export CGO_ENABLED=0 GOOS=linux
GOARCH=${GOARCH:-$("$GO" env GOARCH)}
export GOARCH

# Without the buildx plugin the docker CLI refuses BuildKit; the legacy builder handles
# these Dockerfiles (FROM scratch, COPY --chown) fine.
if ! docker buildx version >/dev/null 2>&1; then
	export DOCKER_BUILDKIT=0
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/authflow-images.XXXXXX")
trap 'rm -rf "$ctx"' EXIT

cd "$repo"
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
nats_version=$("$GO" list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)

# prepare DIR DOCKERFILE: the files every image gets.
prepare() {
	mkdir -p "$1"
	cp "$deploy_dir/docker/$2" "$1/Dockerfile"
	cp "$deploy_dir/docker/passwd" "$deploy_dir/docker/group" "$1/"
}

echo "build-images: compiling authflow ($GOOS/$GOARCH, revision $revision)"
prepare "$ctx/authflow" authflow.Dockerfile
mkdir -p "$ctx/authflow/tmp"
cp "$CA_BUNDLE" "$ctx/authflow/ca-certificates.crt"
"$GO" build -trimpath -ldflags='-s -w' -o "$ctx/authflow/authflow" ./cmd/authflow

echo "build-images: compiling nats-server $nats_version"
prepare "$ctx/nats" nats.Dockerfile
mkdir -p "$ctx/nats/data"
# Built from inside our module, so go.mod and go.sum pin the server and its dependencies.
"$GO" build -trimpath -ldflags='-s -w' -o "$ctx/nats/nats-server" github.com/nats-io/nats-server/v2

# No build timestamp: identical binaries give identical images, so compose keeps
# running containers when nothing changed.
labels=(
	--label "org.opencontainers.image.source=github.com/authflow/authflow"
	--label "org.opencontainers.image.revision=$revision"
)

echo "build-images: docker build $AUTHFLOW_IMAGE"
docker build --quiet "${labels[@]}" \
	--label "org.opencontainers.image.title=authflow" \
	--tag "$AUTHFLOW_IMAGE" "$ctx/authflow"

echo "build-images: docker build $NATS_IMAGE"
docker build --quiet "${labels[@]}" \
	--label "org.opencontainers.image.title=nats-server" \
	--label "org.opencontainers.image.version=$nats_version" \
	--tag "$NATS_IMAGE" "$ctx/nats"

# Smoke check: both binaries start in their images.
docker run --rm "$NATS_IMAGE" --version
docker run --rm "$AUTHFLOW_IMAGE" help >/dev/null
echo "build-images: built $AUTHFLOW_IMAGE and $NATS_IMAGE"

# The development keys of deploy/compose.yaml, made once and kept across runs so their public
# keys stay the same: the workers' sealing key (secrets/seal.seed) and the ingress's signing
# key of each source (secrets/ingress-<source>.seed). `authflow keys new-sealing|new-signing`
# runs in the image (no host binary is needed) and prints the key pair; only the seed line is
# kept, with the public key as a comment. Owner root, group 65532 (the containers' user), mode
# 0440: the containers read them through bind mounts, and `--seal-key-file` refuses a seed any
# other user can read (whoever reads the sealing key can open every secret sealed with it).
# Keys for the emulator cluster only: production keys come from a secret store
# (deploy/README.md, "Sealing key").
#
# make_key FILE KIND PREFIX WHAT: KIND new-sealing or new-signing, PREFIX the public key's
# first letter (X curve, U user).
make_key() {
	local key=$1 kind=$2 prefix=$3 what=$4 rel=${1#"$deploy_dir/"}
	# A compose started before this script made the file leaves an empty directory in its
	# place (Docker creates a missing bind-mount source as one).
	if [[ -d $key ]]; then
		rmdir "$key" || die "$key is a directory; remove it"
	fi
	if [[ ! -s $key ]]; then
		local pair public seed tmp
		pair=$(docker run --rm --network none "$AUTHFLOW_IMAGE" keys "$kind" 2>/dev/null)
		# Cut out in the shell, so the seed goes through no other process or file.
		public=${pair#*public: } && public=${public%%$'\n'*}
		seed=${pair#*seed: } && seed=${seed#"${seed%%[! ]*}"} && seed=${seed%%$'\n'*}
		unset pair
		[[ $public == "$prefix"* && $seed == S"$prefix"* ]] || die "authflow keys $kind printed no key pair"
		tmp=$(mktemp "$(dirname "$key")/.$(basename "$key").XXXXXX")
		printf '# %s of deploy/compose.yaml, made by build-images.sh.\n# public: %s\n%s\n' \
			"$what" "$public" "$seed" >"$tmp"
		unset seed
		chmod 0400 "$tmp"
		mv "$tmp" "$key"
		echo "build-images: made $what deploy/$rel (public $public)"
	fi
	if [[ $(id -u) == 0 ]]; then
		chown 0:65532 "$key" && chmod 0440 "$key"
	elif [[ $(stat -c '%u:%g %a' "$key") != "0:65532 440" ]]; then
		die "deploy/$rel must be owned by root, group 65532 (the containers' user), mode 0440; run once: sudo chown 0:65532 $key && sudo chmod 0440 $key"
	fi
}

make_key "$deploy_dir/secrets/seal.seed" new-sealing X "the development sealing key"
# One per source of deploy/ingress/dev-ingress.yaml.
for source in hr-workday helpdesk-servicenow helpdesk-jira; do
	make_key "$deploy_dir/secrets/ingress-$source.seed" new-signing U "the ingress's development signing key"
done
