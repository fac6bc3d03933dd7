package deploy

import (
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The container tests run the topology of compose.yaml, read from compose.yaml itself, so
// that the two cannot drift apart. This file turns each compose service into a
// containerSpec; containers_cluster_test.go starts the specs with testcontainers.

// topologyOrder is the order the services start in: the NATS nodes, the emulator, the
// workers, then the ingress (compose's depends_on says the same; the ingress is ready once a
// worker made the streams).
var topologyOrder = []string{"nats-1", "nats-2", "nats-3", "emulator", "worker-1", "worker-2", "ingress"}

// composeKeys are the service settings the translation understands. Anything else in
// compose.yaml fails the test rather than being dropped silently.
var composeKeys = map[string]string{
	"image":        "the image",
	"hostname":     "the container's hostname",
	"command":      "the command",
	"environment":  "the container's environment",
	"volumes":      "files copied in; named volumes become anonymous ones",
	"tmpfs":        "tmpfs mounts",
	"ports":        "published on 127.0.0.1, on a free host port",
	"read_only":    "read-only root filesystem",
	"cap_drop":     "dropped capabilities",
	"security_opt": "security options",
	"restart":      "restart policy",
	"networks":     "one private network per test",
	"depends_on":   "topologyOrder",
}

// composeContainer is what the translation reads of one compose service.
type composeContainer struct {
	Image       string       `yaml:"image"`
	Hostname    string       `yaml:"hostname"`
	Command     stringOrList `yaml:"command"`
	Environment environment  `yaml:"environment"`
	Volumes     []string     `yaml:"volumes"`
	Tmpfs       stringOrList `yaml:"tmpfs"`
	Ports       []string     `yaml:"ports"`
	ReadOnly    bool         `yaml:"read_only"`
	CapDrop     []string     `yaml:"cap_drop"`
	SecurityOpt []string     `yaml:"security_opt"`
	Restart     string       `yaml:"restart"`
}

// containerFile is a host file copied into a container before it starts (compose
// bind-mounts it).
type containerFile struct {
	host      string // relative to the deploy directory
	container string // absolute
}

// containerSpec is one container of the topology.
type containerSpec struct {
	name     string // the compose service name: network alias
	image    string
	hostname string
	command  []string
	env      map[string]string
	files    []containerFile
	// volumes are container directories that get a fresh anonymous volume: compose's named
	// volumes, and the directories the files are copied to (the root filesystem is
	// read-only, and Docker copies into a read-only container only inside a volume).
	volumes     []string
	tmpfs       []string
	ports       []string // container ports, "8080/tcp"; published on 127.0.0.1 only
	readOnly    bool
	capDrop     []string
	securityOpt []string
	restart     string
}

// composeSpecs reads compose.yaml and returns its services as container specs, in
// topologyOrder.
func composeSpecs() ([]containerSpec, error) {
	docs, err := yamlDocs("compose.yaml")
	if err != nil {
		return nil, fmt.Errorf("read compose.yaml: %w", err)
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("compose.yaml: %d documents, want 1", len(docs))
	}
	return specsFromCompose(docs[0])
}

// specsFromCompose returns the services of a compose document as container specs, in
// topologyOrder.
func specsFromCompose(doc *yaml.Node) ([]containerSpec, error) {
	var raw struct {
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := doc.Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode compose.yaml: %w", err)
	}
	var typed struct {
		Services map[string]composeContainer `yaml:"services"`
	}
	if err := doc.Decode(&typed); err != nil {
		return nil, fmt.Errorf("decode compose.yaml: %w", err)
	}
	var names []string
	for name := range raw.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(topologyOrder))
	if !slices.Equal(names, want) {
		return nil, fmt.Errorf("compose.yaml services %q, the container tests know %q: update topologyOrder", names, want)
	}
	specs := make([]containerSpec, 0, len(topologyOrder))
	for _, name := range topologyOrder {
		for key := range raw.Services[name] {
			if _, ok := composeKeys[key]; !ok {
				return nil, fmt.Errorf("compose.yaml service %s: %q is not translated for the container tests (containers_compose_test.go)", name, key)
			}
		}
		spec, err := translateService(name, typed.Services[name])
		if err != nil {
			return nil, fmt.Errorf("compose.yaml service %s: %w", name, err)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// translateService turns one compose service into a container spec.
func translateService(name string, s composeContainer) (containerSpec, error) {
	spec := containerSpec{
		name:        name,
		image:       s.Image,
		hostname:    s.Hostname,
		command:     slices.Clone([]string(s.Command)),
		env:         maps.Clone(map[string]string(s.Environment)),
		tmpfs:       slices.Clone([]string(s.Tmpfs)),
		readOnly:    s.ReadOnly,
		capDrop:     slices.Clone(s.CapDrop),
		securityOpt: slices.Clone(s.SecurityOpt),
		restart:     s.Restart,
	}
	if spec.image == "" {
		return spec, fmt.Errorf("no image")
	}
	if spec.hostname == "" {
		spec.hostname = name
	}
	switch s.Restart {
	case "", "no", "always", "on-failure", "unless-stopped":
	default:
		return spec, fmt.Errorf("restart %q: not a restart policy", s.Restart)
	}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || !path.IsAbs(parts[1]) {
			return spec, fmt.Errorf("volume %q: want SOURCE:/TARGET[:ro]", v)
		}
		src, target := parts[0], path.Clean(parts[1])
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			spec.files = append(spec.files, containerFile{host: filepath.Clean(filepath.FromSlash(src)), container: target})
			if dir := path.Dir(target); !slices.Contains(spec.volumes, dir) {
				spec.volumes = append(spec.volumes, dir)
			}
			continue
		}
		// A named volume: a fresh anonymous one, removed with the container.
		if !slices.Contains(spec.volumes, target) {
			spec.volumes = append(spec.volumes, target)
		}
	}
	for _, p := range s.Ports {
		port, err := containerPort(p)
		if err != nil {
			return spec, err
		}
		spec.ports = append(spec.ports, port)
	}
	return spec, nil
}

// containerPort returns the container port of a compose port "127.0.0.1:HOST:CONTAINER[/proto]"
// as "CONTAINER/proto". Anything not bound to 127.0.0.1 is an error.
func containerPort(p string) (string, error) {
	spec, proto, ok := strings.Cut(p, "/")
	if !ok {
		proto = "tcp"
	}
	parts := strings.Split(spec, ":")
	if len(parts) != 3 || parts[0] != "127.0.0.1" || parts[2] == "" {
		return "", fmt.Errorf("port %q: want 127.0.0.1:HOST:CONTAINER", p)
	}
	return parts[2] + "/" + proto, nil
}

// specByName returns the spec of a service.
func specByName(specs []containerSpec, name string) (containerSpec, bool) {
	i := slices.IndexFunc(specs, func(s containerSpec) bool { return s.name == name })
	if i < 0 {
		return containerSpec{}, false
	}
	return specs[i], true
}

// TestComposeSpecs checks the translation of compose.yaml that the container tests run,
// without Docker.
func TestComposeSpecs(t *testing.T) {
	specs, err := composeSpecs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range specs {
		got = append(got, s.name)
	}
	if !slices.Equal(got, topologyOrder) {
		t.Fatalf("services %q, want %q", got, topologyOrder)
	}
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			if !slices.Contains(images, s.image) {
				t.Errorf("image %q, want one of %v", s.image, images)
			}
			if !s.readOnly || !slices.Contains(s.capDrop, "ALL") || !slices.Contains(s.securityOpt, "no-new-privileges:true") {
				t.Errorf("hardening lost: read-only %v, cap_drop %q, security_opt %q", s.readOnly, s.capDrop, s.securityOpt)
			}
			if len(s.command) == 0 {
				t.Errorf("no command")
			}
			for _, f := range s.files {
				if !slices.Contains(s.volumes, path.Dir(f.container)) {
					t.Errorf("file %s: its directory has no volume, so it cannot be copied into a read-only container", f.container)
				}
			}
			switch {
			case strings.HasPrefix(s.name, "nats-"):
				want := containerFile{host: filepath.FromSlash("nats/" + s.name + ".conf"), container: "/etc/nats/nats.conf"}
				if !slices.Equal(s.files, []containerFile{want}) {
					t.Errorf("files %+v, want %+v", s.files, want)
				}
				if !slices.Contains(s.volumes, "/data") {
					t.Errorf("volumes %q: want the JetStream store /data", s.volumes)
				}
			case s.name == "emulator":
				if !slices.Equal(s.ports, []string{"8080/tcp"}) {
					t.Errorf("ports %q, want 8080/tcp", s.ports)
				}
			case strings.HasPrefix(s.name, "worker-"):
				if !slices.Equal(s.ports, []string{"9090/tcp"}) {
					t.Errorf("ports %q, want 9090/tcp", s.ports)
				}
				if !slices.Contains(s.tmpfs, "/tmp") {
					t.Errorf("tmpfs %q, want /tmp", s.tmpfs)
				}
			case s.name == "ingress":
				if !slices.Equal(s.ports, []string{"8090/tcp", "9090/tcp"}) {
					t.Errorf("ports %q, want 8090/tcp and 9090/tcp", s.ports)
				}
				if len(s.files) != 1+len(devIngressKeys) {
					t.Errorf("files %+v, want the configuration and %d seeds", s.files, len(devIngressKeys))
				}
			}
		})
	}
}

func TestTranslateService(t *testing.T) {
	tests := []struct {
		name    string
		in      composeContainer
		wantErr string
		check   func(t *testing.T, s containerSpec)
	}{
		{
			name: "files and volumes",
			in: composeContainer{Image: "authflow:dev", Volumes: []string{
				"./a/b.conf:/etc/x/b.conf:ro", "./c.json:/etc/x/c.json", "data:/data"}},
			check: func(t *testing.T, s containerSpec) {
				if want := []string{"/etc/x", "/data"}; !slices.Equal(s.volumes, want) {
					t.Errorf("volumes %q, want %q", s.volumes, want)
				}
				if len(s.files) != 2 || s.files[0].container != "/etc/x/b.conf" || s.files[1].host != "c.json" {
					t.Errorf("files %+v", s.files)
				}
				if s.hostname != "svc" {
					t.Errorf("hostname %q, want the service name", s.hostname)
				}
			},
		},
		{
			name: "environment",
			in:   composeContainer{Image: "authflow:dev", Environment: environment{"A": "b"}},
			check: func(t *testing.T, s containerSpec) {
				if !maps.Equal(s.env, map[string]string{"A": "b"}) {
					t.Errorf("env %v, want A=b", s.env)
				}
			},
		},
		{
			name: "ports",
			in:   composeContainer{Image: "authflow:dev", Ports: []string{"127.0.0.1:9091:9090", "127.0.0.1:53:53/udp"}},
			check: func(t *testing.T, s containerSpec) {
				if want := []string{"9090/tcp", "53/udp"}; !slices.Equal(s.ports, want) {
					t.Errorf("ports %q, want %q", s.ports, want)
				}
			},
		},
		{name: "no image", in: composeContainer{}, wantErr: "no image"},
		{name: "port on every interface", in: composeContainer{Image: "x", Ports: []string{"0.0.0.0:80:80"}}, wantErr: "want 127.0.0.1"},
		{name: "port without address", in: composeContainer{Image: "x", Ports: []string{"80:80"}}, wantErr: "want 127.0.0.1"},
		{name: "bare port", in: composeContainer{Image: "x", Ports: []string{"80"}}, wantErr: "want 127.0.0.1"},
		{name: "relative target", in: composeContainer{Image: "x", Volumes: []string{"./a:etc/a"}}, wantErr: "want SOURCE:/TARGET"},
		{name: "no target", in: composeContainer{Image: "x", Volumes: []string{"./a"}}, wantErr: "want SOURCE:/TARGET"},
		{name: "bad restart", in: composeContainer{Image: "x", Restart: "sometimes"}, wantErr: "not a restart policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := translateService("svc", tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

// TestSpecsFromCompose: the services must be exactly those of topologyOrder, and a setting
// the translation does not know (here: healthcheck) fails instead of being dropped. Merge
// keys are resolved as compose resolves them.
func TestSpecsFromCompose(t *testing.T) {
	compose := func(extra string, names ...string) string {
		var b strings.Builder
		b.WriteString("x-base: &base\n  image: authflow:dev\n  read_only: true\nservices:\n")
		for _, n := range names {
			fmt.Fprintf(&b, "  %s:\n    <<: *base\n    command: [run]\n", n)
		}
		b.WriteString(extra)
		return b.String()
	}
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "the topology", yaml: compose("", topologyOrder...)},
		{name: "a service missing", yaml: compose("", topologyOrder[:5]...), wantErr: "update topologyOrder"},
		{name: "a service more", yaml: compose("  extra:\n    image: x\n", topologyOrder...), wantErr: "update topologyOrder"},
		{name: "unknown setting", yaml: compose("    healthcheck: {disable: true}\n", topologyOrder...), wantErr: `"healthcheck" is not translated`},
		{name: "bad port", yaml: compose("    ports: [\"8080:8080\"]\n", topologyOrder...), wantErr: "want 127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
				t.Fatalf("test YAML: %v\n%s", err, tt.yaml)
			}
			specs, err := specsFromCompose(&doc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range specs {
				if s.image != "authflow:dev" || !s.readOnly || !slices.Equal(s.command, []string{"run"}) {
					t.Errorf("%s: %+v: merge key not applied", s.name, s)
				}
			}
		})
	}
}
