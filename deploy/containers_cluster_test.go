package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	containertypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/authflow/authflow/events"
)

// The container tests run the topology of compose.yaml with testcontainers-go: three NATS
// JetStream nodes, the Graph emulator and two workers, from the local images, on a private
// Docker network of their own, each container reachable under its service name.
//
// Nothing is ever pulled (there is no registry): build-images.sh builds both images once
// per test binary, the test checks that both exist before it creates a container, and
// testcontainers pulls only an image it cannot find (AlwaysPullImage is never set).
// Ryuk, testcontainers' reaper, is itself an image from Docker Hub, so it is disabled and
// every container and the network are removed by t.Cleanup, also when a test fails. A test
// binary killed before its cleanup leaves them behind; they carry the label
// org.authflow.test=deploy-containers:
//
//	docker rm -f -v $(docker ps -aq --filter label=org.authflow.test=deploy-containers)
//	docker network prune -f --filter label=org.authflow.test=deploy-containers
//
// Where Docker is missing the tests skip, except in CI (CI set), where that is a failure.

const (
	testLabel      = "org.authflow.test"
	testLabelValue = "deploy-containers"

	// sendTimeout is `authflow send --timeout`: for the publish acknowledgement and the result.
	sendTimeout = 60 * time.Second
	// readyTimeout bounds the wait for one part of the topology to become ready.
	readyTimeout = 90 * time.Second
	// buildTimeout bounds build-images.sh (a cold build compiles nats-server and authflow).
	buildTimeout = 15 * time.Minute
)

// loopback is the only host address a port is ever published on.
var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// natsMonitorPort is published (on 127.0.0.1) for every NATS node, not only nats-1 as in
// compose, so that the test can see each node's health and streams.
const natsMonitorPort = "8222/tcp"

// buildImages runs build-images.sh once per test binary: every container test needs the
// images, and even a warm build takes a while. It returns the script's output.
var buildImages = sync.OnceValues(func() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./build-images.sh")
	// The script's default tags, which compose.yaml runs, whatever the environment says.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "AUTHFLOW_IMAGE=") || strings.HasPrefix(kv, "NATS_IMAGE=")
	})
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("build-images.sh: %w", err)
	}
	return out, nil
})

// dockerUnavailable skips the test, or fails it in CI, where a skipped container test
// would hide that nothing was tested.
func dockerUnavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := "docker not available: " + fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: the container tests must run in CI)")
	}
	t.Skip(msg)
}

// dockerCLIDaemon returns the id of the daemon the docker command talks to (`docker info`).
func dockerCLIDaemon(ctx context.Context) (string, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return "", fmt.Errorf("no docker command (build-images.sh needs it): %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ID}}")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker info: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	id := strings.TrimSpace(stdout.String())
	if id == "" {
		return "", fmt.Errorf("docker info: no daemon id: %s", bytes.TrimSpace(stderr.Bytes()))
	}
	return id, nil
}

// newDockerClient connects to Docker as testcontainers does (DOCKER_HOST, Docker contexts,
// ~/.testcontainers.properties) and checks the daemon answers.
func newDockerClient(ctx context.Context) (cli *testcontainers.DockerClient, err error) {
	// Some broken Docker configurations make testcontainers panic instead of failing.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers: %v", r)
		}
	}()
	cli, err = testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return nil, fmt.Errorf("ping: %w", err)
	}
	return cli, nil
}

// requireDocker returns a Docker client once Docker answers and the local images are built;
// it skips the test (fails it in CI) where Docker is missing.
func requireDocker(ctx context.Context, t *testing.T) *testcontainers.DockerClient {
	t.Helper()
	// Before the first testcontainers call: its configuration is read once per process.
	if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
		t.Fatal(err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// build-images.sh uses the docker command, the tests use testcontainers' client: both
	// must reach the same daemon. testcontainers falls back to the default socket when
	// DOCKER_HOST is broken; the docker command does not.
	daemon, err := dockerCLIDaemon(pingCtx)
	if err != nil {
		dockerUnavailable(t, "%v", err)
	}
	cli, err := newDockerClient(pingCtx)
	if err != nil {
		dockerUnavailable(t, "%v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	info, err := cli.Info(pingCtx, client.InfoOptions{})
	if err != nil {
		dockerUnavailable(t, "info: %v", err)
	}
	if info.Info.ID != daemon {
		t.Fatalf("the docker command reaches daemon %q, testcontainers daemon %q (%s): the images would be built where the containers do not run; check DOCKER_HOST and the docker context",
			daemon, info.Info.ID, cli.DaemonHost())
	}

	cfg := testcontainers.ReadConfig().Config
	if !cfg.RyukDisabled {
		t.Fatal("testcontainers' reaper (Ryuk) is enabled: it would be pulled from Docker Hub; set TESTCONTAINERS_RYUK_DISABLED=true")
	}
	if cfg.HubImageNamePrefix != "" {
		t.Fatalf("testcontainers hub.image.name.prefix %q would rename the local images into registry ones and pull them: unset it", cfg.HubImageNamePrefix)
	}

	start := time.Now()
	out, err := buildImages()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("images built by build-images.sh (%s in this test)", time.Since(start).Round(time.Second))
	// testcontainers pulls an image it cannot find: make sure there is nothing to pull.
	for _, img := range images {
		if _, err := cli.ImageInspect(ctx, img); err != nil {
			t.Fatalf("image %s: %v (build-images.sh should have built it; nothing may be pulled)", img, err)
		}
	}
	return cli
}

// cluster is the compose topology, running for one test.
type cluster struct {
	t       *testing.T
	docker  *testcontainers.DockerClient
	network *testcontainers.DockerNetwork
	specs   []containerSpec
	ctrs    map[string]*testcontainers.DockerContainer // by service name
	natsURL string                                     // the workers' --nats-url: every node
	http    *http.Client
}

// natsNodes are the NATS services; a node's server_name is its service name.
var natsNodes = []string{"nats-1", "nats-2", "nats-3"}

// newCluster returns a cluster with its private network and nothing running yet. The
// network is removed when the test ends.
func newCluster(ctx context.Context, t *testing.T) *cluster {
	t.Helper()
	cli := requireDocker(ctx, t)
	specs, err := composeSpecs()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{
		t:      t,
		docker: cli,
		specs:  specs,
		ctrs:   map[string]*testcontainers.DockerContainer{},
		http:   &http.Client{Timeout: 5 * time.Second},
	}
	worker, _ := specByName(specs, "worker-1")
	urls := flagValues(worker.command, "nats-url")
	if len(urls) != 1 {
		t.Fatalf("worker-1: --nats-url %q, want one comma-separated list", urls)
	}
	c.natsURL = urls[0]

	nw, err := tcnetwork.New(ctx, tcnetwork.WithLabels(map[string]string{testLabel: testLabelValue}))
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		// Registered before any container, so it runs after every container is gone.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := nw.Remove(ctx); err != nil {
			t.Errorf("remove network %s: %v", nw.Name, err)
		}
	})
	c.network = nw
	return c
}

// startCluster starts the topology of compose.yaml on a new private network and waits until
// every NATS node is healthy, the emulator answers and both workers and the ingress are ready. Everything is
// removed when the test ends.
func startCluster(ctx context.Context, t *testing.T) *cluster {
	t.Helper()
	c := newCluster(ctx, t)
	began := time.Now()
	for _, s := range c.specs {
		if strings.HasPrefix(s.name, "nats-") && !slices.Contains(s.ports, natsMonitorPort) {
			s.ports = append(slices.Clone(s.ports), natsMonitorPort)
		}
		c.start(ctx, s)
		switch s.name {
		case natsNodes[len(natsNodes)-1]:
			// A node reports healthy once JetStream is current with the meta leader, which
			// takes a quorum: start all three first.
			for _, node := range natsNodes {
				c.eventually(ctx, readyTimeout, node+" healthy", func(ctx context.Context) error {
					return c.natsHealthy(ctx, node)
				})
			}
		case "emulator":
			c.eventually(ctx, readyTimeout, "emulator answering", func(ctx context.Context) error {
				var users json.RawMessage
				return c.getJSON(ctx, "emulator", "8080/tcp", "/_emulator/users", &users)
			})
		}
	}
	// Both workers start at once, as in compose; the first to start creates the streams, and
	// a worker that gives up meanwhile is restarted (restart: on-failure).
	for _, w := range []string{"worker-1", "worker-2"} {
		c.eventually(ctx, readyTimeout, w+" ready", func(ctx context.Context) error {
			return c.workerReady(ctx, w)
		})
	}
	// The ingress is ready once it reaches JetStream and the events stream exists.
	c.eventually(ctx, readyTimeout, "ingress ready", func(ctx context.Context) error {
		_, err := c.get(ctx, "ingress", "8090/tcp", "/readyz")
		return err
	})
	t.Logf("topology running in %s on network %s", time.Since(began).Round(time.Second), c.network.Name)
	return c
}

// hostConfig applies a spec's hardening, volumes and published ports. Ports are bound to
// 127.0.0.1 on a free host port: never every interface, and never compose's fixed ports,
// which a running compose cluster may hold.
func hostConfig(s containerSpec) func(*containertypes.HostConfig) {
	return func(hc *containertypes.HostConfig) {
		hc.ReadonlyRootfs = s.readOnly
		hc.CapDrop = slices.Clone(s.capDrop)
		hc.SecurityOpt = slices.Clone(s.securityOpt)
		hc.RestartPolicy = containertypes.RestartPolicy{Name: containertypes.RestartPolicyMode(s.restart)}
		for _, dir := range s.volumes {
			hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Target: dir})
		}
		if len(s.tmpfs) > 0 {
			hc.Tmpfs = map[string]string{}
			for _, dir := range s.tmpfs {
				hc.Tmpfs[dir] = ""
			}
		}
		hc.PortBindings = network.PortMap{}
		for _, p := range s.ports {
			hc.PortBindings[network.MustParsePort(p)] = []network.PortBinding{{HostIP: loopback}}
		}
	}
}

// loopbackOnly refuses, before it starts, a container that publishes a port on anything but
// the loopback address. testcontainers publishes every port an image EXPOSEs on all
// interfaces unless the request names its ports: this catches that.
func loopbackOnly(ctx context.Context, ctr testcontainers.Container) error {
	info, err := ctr.Inspect(ctx)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	if info.HostConfig.PublishAllPorts {
		return errors.New("publishes every port on every interface")
	}
	for port, bindings := range info.HostConfig.PortBindings {
		for _, b := range bindings {
			if b.HostIP == loopback {
				continue
			}
			where := b.HostIP.String()
			if !b.HostIP.IsValid() || b.HostIP.IsUnspecified() {
				where = "every interface"
			}
			return fmt.Errorf("port %s published on %s: only 127.0.0.1 is allowed", port, where)
		}
	}
	return nil
}

// run creates and starts a container for spec on the cluster's network, under the spec's
// name as network alias. The container is returned even with an error, for cleanup.
func (c *cluster) run(ctx context.Context, s containerSpec, extra ...testcontainers.ContainerCustomizer) (*testcontainers.DockerContainer, error) {
	var aliases []string
	if s.name != "" {
		aliases = []string{s.name}
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLogger(tclog.TestLogger(c.t)),
		tcnetwork.WithNetwork(aliases, c.network),
		testcontainers.WithCmd(s.command...),
		testcontainers.WithEnv(s.env),
		testcontainers.WithLabels(map[string]string{testLabel: testLabelValue}),
		testcontainers.WithConfigModifier(func(cfg *containertypes.Config) { cfg.Hostname = s.hostname }),
		testcontainers.WithHostConfigModifier(hostConfig(s)),
		testcontainers.WithAdditionalLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostCreates: []testcontainers.ContainerHook{loopbackOnly},
		}),
	}
	if len(s.ports) > 0 {
		opts = append(opts, testcontainers.WithExposedPorts(s.ports...))
	}
	if len(s.files) > 0 {
		opts = append(opts, testcontainers.WithAdditionalLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostCreates: []testcontainers.ContainerHook{c.copyFiles(s.files)},
		}))
	}
	return testcontainers.Run(ctx, s.image, append(opts, extra...)...)
}

// copyFiles copies compose's bind-mounted files into a created container with the owner,
// group and mode they have on the host, as a bind mount shows them (the seal seed is
// root:65532 0440, and the worker refuses a seed others may read). testcontainers' Files cannot: it extracts at "/", which
// Docker refuses for a read-only root filesystem; extracting in the file's directory works
// because that directory is a volume (see containerSpec.volumes).
func (c *cluster) copyFiles(files []containerFile) testcontainers.ContainerHook {
	return func(ctx context.Context, ctr testcontainers.Container) error {
		for _, f := range files {
			data, err := os.ReadFile(f.host)
			if err != nil {
				return fmt.Errorf("copy %s: %w", f.host, err)
			}
			fi, err := os.Stat(f.host)
			if err != nil {
				return fmt.Errorf("copy %s: %w", f.host, err)
			}
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			hdr := &tar.Header{Name: path.Base(f.container), Mode: int64(fi.Mode().Perm()), Size: int64(len(data)), ModTime: time.Now()}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("copy %s: %w", f.host, err)
			}
			if _, err := tw.Write(data); err != nil {
				return fmt.Errorf("copy %s: %w", f.host, err)
			}
			if err := tw.Close(); err != nil {
				return fmt.Errorf("copy %s: %w", f.host, err)
			}
			_, err = c.docker.CopyToContainer(ctx, ctr.GetContainerID(), client.CopyToContainerOptions{
				DestinationPath: path.Dir(f.container),
				Content:         &buf,
			})
			if err != nil {
				return fmt.Errorf("copy %s to %s: %w", f.host, f.container, err)
			}
		}
		return nil
	}
}

// start runs a service of the topology; it is removed when the test ends.
func (c *cluster) start(ctx context.Context, s containerSpec) {
	c.t.Helper()
	ctr, err := c.run(ctx, s)
	if ctr != nil {
		c.ctrs[s.name] = ctr
		c.t.Cleanup(func() { c.remove(s.name, ctr) })
	}
	if err != nil {
		c.t.Fatalf("start %s: %v", s.name, err)
	}
}

// remove prints the last lines of a container's logs when the test failed, then removes
// the container and its volumes.
func (c *cluster) remove(name string, ctr *testcontainers.DockerContainer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if c.t.Failed() {
		c.t.Logf("last logs of %s:\n%s", name, c.logTail(ctx, ctr, 40))
	}
	// A short stop timeout: nothing of the cluster is kept.
	if err := ctr.Terminate(ctx, testcontainers.StopTimeout(2*time.Second)); err != nil {
		c.t.Errorf("remove %s: %v", name, err)
	}
}

// logs returns a service's output so far (its first 8 MiB).
func (c *cluster) logs(ctx context.Context, name string) string {
	c.t.Helper()
	rc, err := c.container(name).Logs(ctx)
	if err != nil {
		c.t.Fatalf("logs of %s: %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 8<<20))
	if err != nil {
		c.t.Fatalf("logs of %s: %v", name, err)
	}
	return string(b)
}

// logTail returns the last n lines of a container's output.
func (c *cluster) logTail(ctx context.Context, ctr *testcontainers.DockerContainer, n int) string {
	rc, err := ctr.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(logs: %v)", err)
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// stop stops a service's container: SIGTERM, then SIGKILL after timeout.
func (c *cluster) stop(ctx context.Context, name string, timeout time.Duration) {
	c.t.Helper()
	if err := c.container(name).Stop(ctx, &timeout); err != nil {
		c.t.Fatalf("stop %s: %v", name, err)
	}
	st, err := c.container(name).State(ctx)
	if err != nil {
		c.t.Fatalf("state of %s: %v", name, err)
	}
	if st.Running || st.Restarting {
		c.t.Fatalf("%s still running after stop (status %s)", name, st.Status)
	}
	c.t.Logf("stopped %s", name)
}

// restart starts a stopped service's container again (same volumes, so the same data).
func (c *cluster) restart(ctx context.Context, name string) {
	c.t.Helper()
	if err := c.container(name).Start(ctx); err != nil {
		c.t.Fatalf("start %s again: %v", name, err)
	}
	c.t.Logf("started %s again", name)
}

func (c *cluster) container(name string) *testcontainers.DockerContainer {
	c.t.Helper()
	ctr, ok := c.ctrs[name]
	if !ok {
		c.t.Fatalf("no container %s", name)
	}
	return ctr
}

// eventually calls check until it returns nil; the test fails when that takes longer than
// timeout, with check's last error.
func (c *cluster) eventually(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("%s: not within %s: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

// hostURL is the base URL of a service's published port, on 127.0.0.1. The host port is
// looked up each time: it changes when a container is started again.
func (c *cluster) hostURL(ctx context.Context, name, port string) (string, error) {
	p, err := c.container(name).MappedPort(ctx, port)
	if err != nil {
		return "", fmt.Errorf("%s: published port of %s: %w", name, port, err)
	}
	return "http://127.0.0.1:" + p.Port(), nil
}

// get returns the body of GET path on a service's published port; any status but 200 is an
// error.
func (c *cluster) get(ctx context.Context, name, port, path string) ([]byte, error) {
	base, err := c.hostURL(ctx, name, port)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: GET %s: %w", name, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s: GET %s: %s: %s", name, path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

func (c *cluster) getJSON(ctx context.Context, name, port, path string, v any) error {
	body, err := c.get(ctx, name, port, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: GET %s: %w", name, path, err)
	}
	return nil
}

// natsHealthy: the node's /healthz answers 200, which in a cluster means JetStream is
// current with the meta leader.
func (c *cluster) natsHealthy(ctx context.Context, node string) error {
	_, err := c.get(ctx, node, natsMonitorPort, "/healthz")
	return err
}

// workerReady: the worker's /readyz answers 200 (consuming, NATS connected, streams
// present, Graph token).
func (c *cluster) workerReady(ctx context.Context, name string) error {
	_, err := c.get(ctx, name, "9090/tcp", "/readyz")
	return err
}

// jsz returns a node's JetStream report with every stream and its configuration.
func (c *cluster) jsz(ctx context.Context, node string) (*server.JSInfo, error) {
	var info server.JSInfo
	if err := c.getJSON(ctx, node, natsMonitorPort, "/jsz?streams=true&config=true", &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// streams returns the streams a node holds a replica of, by name.
func streams(info *server.JSInfo) map[string]server.StreamDetail {
	m := map[string]server.StreamDetail{}
	for _, acc := range info.AccountDetails {
		for _, s := range acc.Streams {
			m[s.Name] = s
		}
	}
	return m
}

// seedUsers returns the object ids of the emulator's seed users by user principal name.
func seedUsers(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("emulator-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	var users []struct {
		ID  string `json:"id"`
		UPN string `json:"userPrincipalName"`
	}
	if err := json.Unmarshal(data, &users); err != nil {
		t.Fatalf("emulator-seed.json: %v", err)
	}
	ids := map[string]string{}
	for _, u := range users {
		ids[u.UPN] = u.ID
	}
	return ids
}

// emulatorUser is a user as the emulator's admin API shows it.
type emulatorUser struct {
	ID              string           `json:"id"`
	UPN             string           `json:"userPrincipalName"`
	Methods         []map[string]any `json:"methods"`
	SessionsRevoked int              `json:"sessionsRevoked"`
}

// methods returns the user's methods of one @odata.type, e.g. "phoneAuthenticationMethod".
func (u emulatorUser) methods(odataType string) []map[string]any {
	var ms []map[string]any
	for _, m := range u.Methods {
		if m["@odata.type"] == "#microsoft.graph."+odataType {
			ms = append(ms, m)
		}
	}
	return ms
}

// emulatorUser reads a user from the emulator's admin API (GET /_emulator/users/{id}).
func (c *cluster) emulatorUser(ctx context.Context, id string) emulatorUser {
	c.t.Helper()
	var u emulatorUser
	if err := c.getJSON(ctx, "emulator", "8080/tcp", "/_emulator/users/"+id, &u); err != nil {
		c.t.Fatalf("emulator user %s: %v", id, err)
	}
	return u
}

// sendOutput is what one `authflow send` printed, and how it exited.
type sendOutput struct {
	exit   int
	stdout string
	stderr string
}

// send runs `authflow send TYPE --nats-url <every node> ARGS...` in a short-lived
// container of the authflow image on the cluster's network, hardened like the workers, and
// returns its exit status and output. TYPE comes first (docs/cli.md).
func (c *cluster) send(ctx context.Context, typ string, args ...string) sendOutput {
	c.t.Helper()
	out := c.authflow(ctx, append([]string{"send", typ, "--nats-url", c.natsURL, "--timeout", sendTimeout.String()}, args...)...)
	c.t.Logf("authflow send %s %s: exit %d\nstdout: %s\nstderr: %s", typ, strings.Join(args, " "), out.exit,
		strings.TrimSpace(out.stdout), strings.TrimSpace(out.stderr))
	return out
}

// authflow runs `authflow ARGS...` in a short-lived container of the authflow image on the
// cluster's network, hardened like the workers, and returns its exit status and output.
func (c *cluster) authflow(ctx context.Context, args ...string) sendOutput {
	c.t.Helper()
	what := strings.Join(args[:min(2, len(args))], " ")
	worker, _ := specByName(c.specs, "worker-1")
	s := containerSpec{
		image:       worker.image,
		command:     args,
		readOnly:    worker.readOnly,
		capDrop:     worker.capDrop,
		securityOpt: worker.securityOpt,
	}
	ctr, err := c.run(ctx, s, testcontainers.WithWaitStrategy(wait.ForExit().WithExitTimeout(sendTimeout+30*time.Second)))
	defer func() {
		if ctr == nil {
			return
		}
		rmCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ctr.Terminate(rmCtx); err != nil {
			c.t.Errorf("remove authflow container: %v", err)
		}
	}()
	if err != nil {
		c.t.Fatalf("authflow %s: %v", what, err)
	}
	st, err := ctr.State(ctx)
	if err != nil {
		c.t.Fatalf("authflow %s: state: %v", what, err)
	}
	if st.Running {
		c.t.Fatalf("authflow %s: still running", what)
	}
	rc, err := c.docker.ContainerLogs(ctx, ctr.GetContainerID(), client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		c.t.Fatalf("authflow %s: logs: %v", what, err)
	}
	defer rc.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&stdout, &stderr, rc); err != nil {
		c.t.Fatalf("authflow %s: logs: %v", what, err)
	}
	return sendOutput{exit: st.ExitCode, stdout: stdout.String(), stderr: stderr.String()}
}

// Exit statuses of `authflow send --wait` (docs/cli.md).
const (
	exitSucceeded = 0
	exitFailed    = 1 // the result is failed or rejected
	exitUsage     = 2 // a bad flag or an invalid event: nothing was published
)

// sendWait sends an event with --wait --json, checks the exit status and returns the
// result it printed.
func (c *cluster) sendWait(ctx context.Context, wantExit int, typ string, args ...string) *events.Result {
	c.t.Helper()
	out := c.send(ctx, typ, append(args, "--wait", "--json")...)
	if out.exit != wantExit {
		c.t.Fatalf("authflow send %s: exit %d, want %d\nstdout: %s\nstderr: %s", typ, out.exit, wantExit, out.stdout, out.stderr)
	}
	res, err := events.DecodeResult(bytes.TrimSpace([]byte(out.stdout)))
	if err != nil {
		c.t.Fatalf("authflow send %s: result: %v\nstdout: %s", typ, err, out.stdout)
	}
	if res.Data.Event.Type != typ {
		c.t.Fatalf("authflow send %s: result of a %s event", typ, res.Data.Event.Type)
	}
	return res
}

// metricSum returns the sum of the samples of a Prometheus counter in the text exposition
// format whose labels include every one of labels (`name="value"`).
func metricSum(text, metric string, labels ...string) (float64, error) {
	var sum float64
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		var set string
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				return 0, fmt.Errorf("malformed sample %q", line)
			}
			set, rest = rest[1:end], rest[end+1:]
		}
		if !allLabels(set, labels) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("malformed sample %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("sample %q: %w", line, err)
		}
		sum += v
	}
	return sum, nil
}

// allLabels reports whether the label set `a="x",b="y"` contains every label.
func allLabels(set string, labels []string) bool {
	have := strings.Split(set, ",")
	for _, l := range labels {
		if !slices.Contains(have, l) {
			return false
		}
	}
	return true
}

// succeeded returns how many events a worker counted as succeeded
// (authflow_events_total{outcome="succeeded"}).
func (c *cluster) succeeded(ctx context.Context, worker string) float64 {
	c.t.Helper()
	body, err := c.get(ctx, worker, "9090/tcp", "/metrics")
	if err != nil {
		c.t.Fatalf("metrics of %s: %v", worker, err)
	}
	n, err := metricSum(string(body), "authflow_events_total", `outcome="succeeded"`)
	if err != nil {
		c.t.Fatalf("metrics of %s: %v", worker, err)
	}
	return n
}

// ingressPost POSTs body to the ingress's path over its published port with Prefer: wait and
// the given headers (name, value pairs) and returns the status and the answer.
func (c *cluster) ingressPost(ctx context.Context, path string, body []byte, kv ...string) (int, []byte) {
	c.t.Helper()
	base, err := c.hostURL(ctx, "ingress", "8090/tcp")
	if err != nil {
		c.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Prefer", "wait=30")
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := (&http.Client{Timeout: sendTimeout}).Do(req)
	if err != nil {
		c.t.Fatalf("ingress: POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	c.t.Logf("ingress: POST %s: %s\n%s", path, resp.Status, bytes.TrimSpace(out))
	return resp.StatusCode, out
}
