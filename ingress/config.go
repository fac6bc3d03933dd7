package ingress

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"

	"github.com/authflow/authflow/events"
)

// Config is a parsed, validated ingress configuration (see docs/ingress.md).
// Secrets, seeds and mappings are resolved and compiled: a Config that
// parsed is ready to serve. It is read-only once given to New.
type Config struct {
	// DefaultRegion is the decoder's region for national phone numbers;
	// use the worker's --default-region. Defaults to none (+ numbers only).
	DefaultRegion string
	// PublishTimeout bounds the wait for JetStream's acknowledgement.
	// Defaults to 5s.
	PublishTimeout time.Duration
	// Sources by name: who may send, and how each proves it.
	Sources map[string]*Source
	// Routes by name: the /v1/hooks/{route} mappings.
	Routes map[string]*Route
}

// Source is one sender: an event source, its credentials, the key the
// ingress signs its events with, and its results webhook.
type Source struct {
	Name string
	// AnySource lets the source's events name any source. Only the
	// development configuration sets it; the YAML cannot.
	AnySource bool
	// SubPaths lets events name a source below Name ("hr/workday/emea"
	// for "hr/workday").
	SubPaths bool
	// PassSignature lets a structured-mode event that the sender signed
	// itself (events.HeaderSignature, events.HeaderSigner) keep that
	// signature instead of the ingress's.
	PassSignature bool
	Auth          Auth
	// Signer is the ingress's nkeys ed25519 key for this source.
	Signer nkeys.KeyPair
	// RateLimit is the events per second allowed, Burst the bucket size;
	// 0 means no limit.
	RateLimit rate.Limit
	Burst     int
	// Results is the source's results webhook; nil for none.
	Results *ResultsWebhook
}

// owns reports whether an event (or result) with source name belongs to s.
func (s *Source) owns(name string) bool {
	return s.AnySource || name == s.Name || (s.SubPaths && strings.HasPrefix(name, s.Name+"/"))
}

// Auth is how a source authenticates. Every method that is set must pass;
// at least one is set.
type Auth struct {
	Bearer           *BearerAuth
	Basic            *BasicAuth
	StandardWebhooks *StandardWebhooksAuth
	HMAC             *HMACAuth
	MTLS             *MTLSAuth
}

// BearerAuth accepts "Authorization: Bearer T" when SHA-256(T) is one of
// TokenHashes (several for rotation).
type BearerAuth struct{ TokenHashes [][sha256.Size]byte }

// BasicAuth accepts HTTP basic authentication as Username with a password
// whose SHA-256 is one of PasswordHashes.
type BasicAuth struct {
	Username       string
	PasswordHashes [][sha256.Size]byte
}

// StandardWebhooksAuth verifies Standard Webhooks 1.0 signatures
// (webhook-id, webhook-timestamp, webhook-signature) made with any of
// Secrets, within Tolerance of the ingress's clock.
type StandardWebhooksAuth struct {
	Secrets   [][]byte
	Tolerance time.Duration
}

// HMACAuth verifies Header: Prefix + hex(HMAC-SHA256(secret, body)) made
// with any of Secrets (Jira's and GitHub's webhook signatures).
type HMACAuth struct {
	Header  string
	Prefix  string
	Secrets [][]byte
}

// MTLSAuth accepts a verified client certificate whose subject (in
// RFC 2253 form, as Go prints it: "CN=sn.contoso.example,O=Contoso") is one
// of Subjects or that has a SAN (DNS name, email address or URI) in SANs.
type MTLSAuth struct {
	Subjects []string
	SANs     []string
}

// ResultsWebhook delivers the results of a source's events to URL, signed
// with Standard Webhooks using Secrets (one signature each).
type ResultsWebhook struct {
	URL     string
	Secrets [][]byte
	// Timeout bounds one attempt. Defaults to 15s.
	Timeout time.Duration
	// InitialInterval and MaxInterval shape the exponential backoff
	// (with jitter) between attempts; MaxElapsed bounds the retrying,
	// after which the result is parked in the DLQ. Default 1s, 5m, 1h.
	InitialInterval, MaxInterval, MaxElapsed time.Duration
}

// Defaults.
const (
	DefaultPublishTimeout   = 5 * time.Second
	DefaultTolerance        = 5 * time.Minute
	DefaultResultsTimeout   = 15 * time.Second
	DefaultResultsInitial   = time.Second
	DefaultResultsMax       = 5 * time.Minute
	DefaultResultsMaxElapse = time.Hour
	DefaultHMACPrefix       = "sha256="
)

// The YAML shapes. decodeStrict fills them; resolve turns them into a Config.
type (
	yamlConfig struct {
		Version        int                    `yaml:"version"`
		DefaultRegion  string                 `yaml:"defaultRegion"`
		PublishTimeout time.Duration          `yaml:"publishTimeout"`
		Sources        map[string]*yamlSource `yaml:"sources"`
		Routes         map[string]*yamlRoute  `yaml:"routes"`
	}
	yamlSource struct {
		Auth          *yamlAuth      `yaml:"auth"`
		SigningSeed   string         `yaml:"signingSeed"`
		SubPaths      bool           `yaml:"subPaths"`
		PassSignature bool           `yaml:"passSignature"`
		RateLimit     *yamlRateLimit `yaml:"rateLimit"`
		Results       *yamlResults   `yaml:"results"`
	}
	yamlAuth struct {
		Bearer *struct {
			TokenSHA256 []string `yaml:"tokenSHA256"`
		} `yaml:"bearer"`
		Basic *struct {
			Username       string   `yaml:"username"`
			PasswordSHA256 []string `yaml:"passwordSHA256"`
		} `yaml:"basic"`
		StandardWebhooks *struct {
			Secrets   []string      `yaml:"secrets"`
			Tolerance time.Duration `yaml:"tolerance"`
		} `yaml:"standardWebhooks"`
		HMAC *struct {
			Header  string   `yaml:"header"`
			Prefix  *string  `yaml:"prefix"`
			Secrets []string `yaml:"secrets"`
		} `yaml:"hmac"`
		MTLS *struct {
			Subjects []string `yaml:"subjects"`
			SANs     []string `yaml:"sans"`
		} `yaml:"mtls"`
	}
	yamlRateLimit struct {
		PerSecond float64 `yaml:"perSecond"`
		Burst     int     `yaml:"burst"`
	}
	yamlResults struct {
		URL             string        `yaml:"url"`
		Secrets         []string      `yaml:"secrets"`
		Timeout         time.Duration `yaml:"timeout"`
		InitialInterval time.Duration `yaml:"initialInterval"`
		MaxInterval     time.Duration `yaml:"maxInterval"`
		MaxElapsed      time.Duration `yaml:"maxElapsed"`
	}
	yamlRoute struct {
		Sources          []string     `yaml:"sources"`
		OktaVerification bool         `yaml:"oktaVerification"`
		Mapping          *yamlMapping `yaml:"mapping"`
	}
	yamlMapping struct {
		Type    string `yaml:"type"`
		Subject string `yaml:"subject"`
		ID      string `yaml:"id"`
		Time    string `yaml:"time"`
		Data    string `yaml:"data"`
	}
)

// LoadOptions tell ParseConfig where secret references point.
type LoadOptions struct {
	// LookupEnv resolves env:NAME references. Defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Dir is the directory relative file:PATH references are read from.
	// Defaults to the working directory.
	Dir string
}

// LoadConfig reads and parses a configuration file; relative file:
// references are relative to the file's directory.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load ingress config: %w", err)
	}
	c, err := ParseConfig(b, LoadOptions{Dir: filepath.Dir(path)})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates a configuration (YAML, docs/ingress.md)
// and resolves its secret references. Every error is a *ConfigError naming
// the setting: unknown settings, duplicate keys, wrong types, missing
// secrets, bad seeds or hashes, duplicate credentials across sources and
// mappings that do not compile or type-check.
func ParseConfig(b []byte, opts LoadOptions) (*Config, error) {
	c, err := parseConfig(b, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func parseConfig(b []byte, opts LoadOptions) (*Config, *ConfigError) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &ConfigError{Message: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &ConfigError{Message: "empty configuration"}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ConfigError{Message: "a configuration is one YAML document; found another"}
	}
	var y yamlConfig
	if err := decodeStrict(doc.Content[0], reflect.ValueOf(&y).Elem(), ""); err != nil {
		return nil, err
	}
	r := resolver{opts: opts}
	return r.config(&y)
}

type resolver struct{ opts LoadOptions }

func (r *resolver) config(y *yamlConfig) (*Config, *ConfigError) {
	switch {
	case y.Version == 0:
		return nil, pathErr("version", "required (version: 1)")
	case y.Version != 1:
		return nil, pathErr("version", "unsupported version %d; this authflow reads version 1", y.Version)
	case len(y.Sources) == 0:
		return nil, pathErr("sources", "required: at least one source")
	}
	c := &Config{
		DefaultRegion:  y.DefaultRegion,
		PublishTimeout: cmpDuration(y.PublishTimeout, DefaultPublishTimeout),
		Sources:        map[string]*Source{},
		Routes:         map[string]*Route{},
	}
	if c.DefaultRegion != "" {
		if _, err := (events.Decoder{DefaultRegion: c.DefaultRegion}).Decode([]byte("{}")); events.CodeOf(err) == events.CodeInternal {
			return nil, pathErr("defaultRegion", "%q is not a region code such as US", c.DefaultRegion)
		}
	}
	if c.PublishTimeout > time.Minute {
		return nil, pathErr("publishTimeout", "at most 1m")
	}
	for _, name := range sortedKeys(y.Sources) {
		s, err := r.source(name, y.Sources[name])
		if err != nil {
			return nil, err
		}
		c.Sources[name] = s
	}
	if err := checkUnique(c); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(y.Routes) {
		rt, err := compileRoute(name, y.Routes[name], c)
		if err != nil {
			return nil, err
		}
		c.Routes[name] = rt
	}
	return c, nil
}

func (r *resolver) source(name string, y *yamlSource) (*Source, *ConfigError) {
	p := "sources." + name
	if !validSourceName(name) {
		return nil, pathErr(p, "not a valid event source (letters, digits and ._~:/@+-, starting with a letter or digit; at most 128)")
	}
	if y == nil {
		return nil, pathErr(p, "must be a mapping")
	}
	s := &Source{Name: name, SubPaths: y.SubPaths, PassSignature: y.PassSignature}
	if y.Auth == nil {
		return nil, pathErr(p+".auth", "required: how this source authenticates (bearer, basic, standardWebhooks, hmac, mtls)")
	}
	var err *ConfigError
	if s.Auth, err = r.auth(p+".auth", y.Auth); err != nil {
		return nil, err
	}
	if y.SigningSeed == "" {
		return nil, pathErr(p+".signingSeed", "required: file:PATH or env:NAME of the nkeys seed the ingress signs this source's events with (authflow keys new-signing)")
	}
	if s.Signer, err = r.seed(p+".signingSeed", y.SigningSeed); err != nil {
		return nil, err
	}
	if rl := y.RateLimit; rl != nil {
		if rl.PerSecond <= 0 || rl.PerSecond > 100000 {
			return nil, pathErr(p+".rateLimit.perSecond", "must be > 0 and at most 100000")
		}
		s.RateLimit, s.Burst = rate.Limit(rl.PerSecond), rl.Burst
		if s.Burst == 0 {
			s.Burst = max(1, int(rl.PerSecond))
		}
		if s.Burst < 1 || s.Burst > 100000 {
			return nil, pathErr(p+".rateLimit.burst", "must be 1..100000")
		}
	}
	if y.Results != nil {
		if s.Results, err = r.results(p+".results", y.Results); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (r *resolver) auth(p string, y *yamlAuth) (Auth, *ConfigError) {
	var a Auth
	if y.Bearer != nil {
		hs, err := hashes(p+".bearer.tokenSHA256", y.Bearer.TokenSHA256)
		if err != nil {
			return a, err
		}
		a.Bearer = &BearerAuth{TokenHashes: hs}
	}
	if y.Basic != nil {
		u := y.Basic.Username
		if u == "" || strings.ContainsAny(u, ":") || strings.ContainsFunc(u, isCtlOrSpace) || len(u) > 128 {
			return a, pathErr(p+".basic.username", "required: 1..128 printable characters without spaces or a colon")
		}
		hs, err := hashes(p+".basic.passwordSHA256", y.Basic.PasswordSHA256)
		if err != nil {
			return a, err
		}
		a.Basic = &BasicAuth{Username: u, PasswordHashes: hs}
	}
	if sw := y.StandardWebhooks; sw != nil {
		if len(sw.Secrets) == 0 {
			return a, pathErr(p+".standardWebhooks.secrets", "required: at least one whsec_ secret")
		}
		out := &StandardWebhooksAuth{Tolerance: cmpDuration(sw.Tolerance, DefaultTolerance)}
		if out.Tolerance > time.Hour {
			return a, pathErr(p+".standardWebhooks.tolerance", "at most 1h")
		}
		for i, ref := range sw.Secrets {
			ip := p + ".standardWebhooks.secrets[" + strconv.Itoa(i) + "]"
			key, err := r.webhookSecret(ip, ref)
			if err != nil {
				return a, err
			}
			out.Secrets = append(out.Secrets, key)
		}
		a.StandardWebhooks = out
	}
	if h := y.HMAC; h != nil {
		if h.Header == "" || !validHeaderName(h.Header) {
			return a, pathErr(p+".hmac.header", "required: the header that carries the signature, e.g. X-Hub-Signature")
		}
		switch strings.ToLower(h.Header) {
		case "authorization", "content-type", "content-length", "host":
			return a, pathErr(p+".hmac.header", "%s cannot carry a signature", h.Header)
		}
		out := &HMACAuth{Header: http.CanonicalHeaderKey(h.Header), Prefix: DefaultHMACPrefix}
		if h.Prefix != nil {
			out.Prefix = *h.Prefix
		}
		if len(h.Secrets) == 0 {
			return a, pathErr(p+".hmac.secrets", "required: at least one secret")
		}
		for i, ref := range h.Secrets {
			ip := p + ".hmac.secrets[" + strconv.Itoa(i) + "]"
			key, err := r.secret(ip, ref, true)
			if err != nil {
				return a, err
			}
			if len(key) < 16 {
				return a, pathErr(ip, "too short: use at least 16 random bytes")
			}
			out.Secrets = append(out.Secrets, key)
		}
		a.HMAC = out
	}
	if m := y.MTLS; m != nil {
		if len(m.Subjects) == 0 && len(m.SANs) == 0 {
			return a, pathErr(p+".mtls", "give subjects or sans: the client certificates that are this source")
		}
		for i, s := range append(slices.Clone(m.Subjects), m.SANs...) {
			if s == "" || strings.ContainsFunc(s, isCtl) {
				return a, pathErr(fmt.Sprintf("%s.mtls[%d]", p, i), "must be a non-empty printable string")
			}
		}
		a.MTLS = &MTLSAuth{Subjects: m.Subjects, SANs: m.SANs}
	}
	if a.Bearer == nil && a.Basic == nil && a.StandardWebhooks == nil && a.HMAC == nil && a.MTLS == nil {
		return a, pathErr(p, "name at least one method: bearer, basic, standardWebhooks, hmac or mtls")
	}
	if a.Bearer != nil && a.Basic != nil {
		return a, pathErr(p, "bearer and basic both use the Authorization header; a request can carry only one")
	}
	return a, nil
}

func (r *resolver) results(p string, y *yamlResults) (*ResultsWebhook, *ConfigError) {
	u, err := url.Parse(y.URL)
	switch {
	case y.URL == "":
		return nil, pathErr(p+".url", "required")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return nil, pathErr(p+".url", "must be an absolute https URL")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return nil, pathErr(p+".url", "must be https (plain http only to a loopback address)")
	case u.User != nil:
		return nil, pathErr(p+".url", "must not carry credentials; the request is signed")
	}
	out := &ResultsWebhook{
		URL:             u.String(),
		Timeout:         cmpDuration(y.Timeout, DefaultResultsTimeout),
		InitialInterval: cmpDuration(y.InitialInterval, DefaultResultsInitial),
		MaxInterval:     cmpDuration(y.MaxInterval, DefaultResultsMax),
		MaxElapsed:      cmpDuration(y.MaxElapsed, DefaultResultsMaxElapse),
	}
	if out.Timeout > 5*time.Minute {
		return nil, pathErr(p+".timeout", "at most 5m")
	}
	if out.MaxInterval < out.InitialInterval {
		return nil, pathErr(p+".maxInterval", "must be at least initialInterval (%s)", out.InitialInterval)
	}
	if out.MaxElapsed > 7*24*time.Hour {
		return nil, pathErr(p+".maxElapsed", "at most 168h")
	}
	if len(y.Secrets) == 0 {
		return nil, pathErr(p+".secrets", "required: the whsec_ secret(s) the receiver verifies")
	}
	for i, ref := range y.Secrets {
		key, err := r.webhookSecret(p+".secrets["+strconv.Itoa(i)+"]", ref)
		if err != nil {
			return nil, err
		}
		out.Secrets = append(out.Secrets, key)
	}
	return out, nil
}

// secret resolves a secret reference: env:NAME, file:PATH, or (when
// literal is allowed) the value itself. The value is trimmed of
// surrounding white space (files end with a newline).
func (r *resolver) secret(p, ref string, literal bool) ([]byte, *ConfigError) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		name := ref[len("env:"):]
		v, ok := r.opts.LookupEnv(name)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, pathErr(p, "environment variable %s is not set", name)
		}
		return []byte(strings.TrimSpace(v)), nil
	case strings.HasPrefix(ref, "file:"):
		file := ref[len("file:"):]
		if !filepath.IsAbs(file) && r.opts.Dir != "" {
			file = filepath.Join(r.opts.Dir, file)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, pathErr(p, "%v", err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return nil, pathErr(p, "%s is empty", file)
		}
		return b, nil
	case !literal:
		return nil, pathErr(p, "must be file:PATH or env:NAME (keep seeds out of the configuration file)")
	case ref == "":
		return nil, pathErr(p, "must not be empty")
	}
	return []byte(ref), nil
}

// webhookSecret resolves a Standard Webhooks secret: whsec_ and base64 of
// 24 to 64 random bytes (the specification's bounds).
func (r *resolver) webhookSecret(p, ref string) ([]byte, *ConfigError) {
	v, err := r.secret(p, ref, true)
	if err != nil {
		return nil, err
	}
	key, perr := ParseWebhookSecret(string(v))
	if perr != nil {
		return nil, pathErr(p, "%v", perr)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, pathErr(p, "a Standard Webhooks secret is 24 to 64 random bytes; this one is %d", len(key))
	}
	return key, nil
}

func (r *resolver) seed(p, ref string) (nkeys.KeyPair, *ConfigError) {
	b, err := r.secret(p, ref, false)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	kp, perr := parseSeed(b)
	if perr != nil {
		return nil, pathErr(p, "%v", perr)
	}
	return kp, nil
}

// parseSeed reads an nkeys ed25519 (signing) seed file's contents.
func parseSeed(b []byte) (nkeys.KeyPair, error) { return events.ParseSeed(b, false) }

func hashes(p string, in []string) ([][sha256.Size]byte, *ConfigError) {
	if len(in) == 0 {
		return nil, pathErr(p, "required: at least one hex SHA-256 (printf %%s \"$SECRET\" | sha256sum)")
	}
	out := make([][sha256.Size]byte, 0, len(in))
	for i, h := range in {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, pathErr(p+"["+strconv.Itoa(i)+"]", "must be 64 hex digits (a SHA-256)")
		}
		out = append(out, [sha256.Size]byte(b))
	}
	return out, nil
}

// checkUnique refuses a credential that two sources share: a request
// must authenticate as exactly one source, and a shared credential would
// make that depend on which other methods it happens to present.
func checkUnique(c *Config) *ConfigError {
	type seen struct{ source, what string }
	owners := map[string]seen{}
	claim := func(src, what, key string) *ConfigError {
		if o, ok := owners[key]; ok && o.source != src {
			return pathErr("sources."+src+".auth", "%s is also used by source %s; each credential must name one source", what, o.source)
		}
		owners[key] = seen{src, what}
		return nil
	}
	for _, name := range sortedKeys(c.Sources) {
		a := c.Sources[name].Auth
		var err *ConfigError
		if a.Bearer != nil {
			for _, h := range a.Bearer.TokenHashes {
				if err = claim(name, "a bearer token", "bearer:"+string(h[:])); err != nil {
					return err
				}
			}
		}
		if a.Basic != nil {
			if err = claim(name, "basic username "+a.Basic.Username, "basic:"+a.Basic.Username); err != nil {
				return err
			}
		}
		if a.StandardWebhooks != nil {
			for _, k := range a.StandardWebhooks.Secrets {
				if err = claim(name, "a standardWebhooks secret", "sw:"+string(k)); err != nil {
					return err
				}
			}
		}
		if a.HMAC != nil {
			for _, k := range a.HMAC.Secrets {
				if err = claim(name, "an hmac secret", "hmac:"+a.HMAC.Header+":"+string(k)); err != nil {
					return err
				}
			}
		}
		if a.MTLS != nil {
			for _, s := range a.MTLS.Subjects {
				if err = claim(name, "mtls subject "+s, "mtls-subject:"+s); err != nil {
					return err
				}
			}
			for _, s := range a.MTLS.SANs {
				if err = claim(name, "mtls SAN "+s, "mtls-san:"+s); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validSourceName applies the decoder's rule for event sources (pattern
// and length in events/patterns.go), so that a source name is one an event
// may carry.
func validSourceName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i > 0 {
			ok = ok || strings.ContainsRune("._~:/@+-", r)
		}
		if !ok {
			return false
		}
	}
	return true
}

func validHeaderName(h string) bool {
	if h == "" || len(h) > 64 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func isCtl(r rune) bool        { return r < ' ' || r == 0x7f }
func isCtlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
