package events

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"
)

// Policy decides who may ask for what. Build one with ParsePolicy,
// LoadPolicy or DevPolicy; it is read-only afterwards and safe for
// concurrent use.
type Policy struct {
	maxAge time.Duration
	// maxScheduleAhead bounds data.effectiveAt (0: DefaultMaxScheduleAhead).
	maxScheduleAhead time.Duration
	maxFutureSkew    time.Duration
	tap              tapBounds
	sources          map[string]*sourcePolicy // by source; "*" matches any source not listed
	protected        protectedUsers
	// interactivePrefixes: sources whose name starts with one of these are
	// interactive unless their entry says otherwise (DevPolicy's helpdesk/).
	interactivePrefixes []string
	notify              notifyPolicy   // policy_safety.go
	limits              []LimitRule    // policy_safety.go
	approvers           []string       // policy_approval.go
	approvals           []ApprovalRule // policy_approval.go
}

// Priority classes of sources (policy sources.<name>.priority).
const (
	// PriorityInteractive is for a person waiting (a helpdesk call): its
	// events go ahead of any bulk backlog.
	PriorityInteractive = "interactive"
	// PriorityBulk is the default: HR feeds, reconciliation, scripts.
	PriorityBulk = "bulk"
)

// Priority is the class of events from source: interactive or bulk.
func (p *Policy) Priority(source string) string {
	if sp := p.sources[source]; sp != nil && sp.priority != "" {
		return sp.priority
	}
	for _, pre := range p.interactivePrefixes {
		if strings.HasPrefix(source, pre) {
			return PriorityInteractive
		}
	}
	if sp := p.sources["*"]; sp != nil && sp.priority != "" && p.sources[source] == nil {
		return sp.priority
	}
	return PriorityBulk
}

// HasInteractive reports whether any source can be interactive.
func (p *Policy) HasInteractive() bool {
	if len(p.interactivePrefixes) > 0 {
		return true
	}
	for _, sp := range p.sources {
		if sp.priority == PriorityInteractive {
			return true
		}
	}
	return false
}

type tapBounds struct {
	minLifetime, maxLifetime int // minutes
	allowMultiUse            bool
	maxStartDelay            time.Duration
}

type sourcePolicy struct {
	types               map[string]bool // "*" = every type
	requireSignature    bool
	keys                []string // pinned ed25519 nkeys public keys
	requireVerification map[string]bool
	priority            string // "" (bulk), interactive or bulk
}

type protectedUsers struct {
	upns             []string // lower-case path.Match patterns
	objectIDs        map[string]bool
	anyDirectoryRole bool
	allow            map[string]map[string]bool // source -> types that may act on protected users
}

// Policy defaults, used when the file leaves a setting out.
const (
	DefaultMaxAge        = 24 * time.Hour
	DefaultMaxFutureSkew = 5 * time.Minute
	DefaultTAPMin        = 60  // minutes; the Entra tenant default minimum
	DefaultTAPMax        = 480 // minutes; the Entra tenant default maximum
	DefaultMaxStartDelay = 7 * 24 * time.Hour
	// DefaultMaxScheduleAhead bounds how far ahead data.effectiveAt may be.
	DefaultMaxScheduleAhead = 90 * 24 * time.Hour
)

// MaxScheduleAhead is how far in the future data.effectiveAt may be.
func (p *Policy) MaxScheduleAhead() time.Duration {
	if p.maxScheduleAhead == 0 {
		return DefaultMaxScheduleAhead
	}
	return p.maxScheduleAhead
}

// MaxAge is the oldest event the policy accepts. An idempotency ledger must
// keep event keys at least this long, or an old event could be replayed.
func (p *Policy) MaxAge() time.Duration { return p.maxAge }

// DevPolicy accepts every event type from every source, with no signatures,
// no protected users and Graph's full TAP range; sources whose name starts
// with helpdesk/ are interactive. It is insecure, for `authflow dev` and
// tests only. A signature that is present is still checked, against the
// signer key it names.
func DevPolicy() *Policy {
	all := map[string]bool{"*": true}
	return &Policy{
		maxAge:        DefaultMaxAge,
		maxFutureSkew: DefaultMaxFutureSkew,
		tap:           tapBounds{minLifetime: 10, maxLifetime: 43200, allowMultiUse: true, maxStartDelay: 30 * 24 * time.Hour},
		sources:       map[string]*sourcePolicy{"*": {types: all}},

		interactivePrefixes: []string{"helpdesk/"},
	}
}

// DevPolicyWith is DevPolicy with four-eyes approval: approverPub (an
// nkeys user public key) is the one approver, and an
// authflow.mfa.reset.v1 for a user who holds a directory role waits for
// it (rule dev-admin-mfa-reset, the default timeout). An invalid key is
// an error.
func DevPolicyWith(approverPub string) (*Policy, error) {
	if !reUserKey.MatchString(approverPub) || !nkeys.IsValidPublicUserKey(approverPub) {
		return nil, fmt.Errorf("approver %s is not an nkeys user public key", quote(approverPub))
	}
	p := DevPolicy()
	p.approvers = []string{approverPub}
	p.approvals = []ApprovalRule{{
		Name: DevApprovalRule, Types: []string{TypeMFAReset}, Timeout: DefaultApprovalTimeout,
		users: &protectedUsers{anyDirectoryRole: true},
	}}
	return p, nil
}

// DevApprovalRule names DevPolicyWith's approval rule.
const DevApprovalRule = "dev-admin-mfa-reset"

// PolicyError is an error in a policy file. Line and Column are 1-based (0
// when unknown); Field is the path of the setting, e.g.
// "sources.hr/workday.types[2]".
type PolicyError struct {
	Line, Column int
	Field        string
	Message      string
}

// Error renders "policy: line L, column C: field: message".
func (e *PolicyError) Error() string {
	var b strings.Builder
	b.WriteString("policy")
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// LoadPolicy reads and parses a policy file.
func LoadPolicy(file string) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", file, err)
	}
	return p, nil
}

// ParsePolicy parses and validates a policy (YAML; see docs/events.md).
// Every error is a *PolicyError naming the line and the field; unknown
// settings, duplicate keys, YAML aliases, unknown event types, invalid keys
// and inconsistent settings are errors.
func ParsePolicy(b []byte) (*Policy, error) {
	p, err := parsePolicy(b)
	if err != nil {
		return nil, err
	}
	return p, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parsePolicy(b []byte) (*Policy, *PolicyError) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &PolicyError{Message: "empty policy"}
	}
	// A second document would be silently ignored; refuse it.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, yamlError(err)
		}
		return nil, nodeError(&extra, "", "a policy is one YAML document; found another")
	}
	p := &Policy{
		maxAge:        DefaultMaxAge,
		maxFutureSkew: DefaultMaxFutureSkew,
		tap:           tapBounds{minLifetime: DefaultTAPMin, maxLifetime: DefaultTAPMax, maxStartDelay: DefaultMaxStartDelay},
		sources:       map[string]*sourcePolicy{},
	}
	root := doc.Content[0]
	members, err := mapping(root, "")
	if err != nil {
		return nil, err
	}
	var sawVersion, sawSources bool
	var allowNode, notifyNode, limitsNode, approversNode, approvalsNode *yaml.Node // checked once sources are known
	for _, m := range members {
		switch m.key {
		case "version":
			sawVersion = true
			v, err := intValue(m.val, "version")
			if err != nil {
				return nil, err
			}
			if v != 1 {
				return nil, nodeError(m.val, "version", "unsupported version %d; this authflow reads version 1", v)
			}
		case "maxAge":
			if p.maxAge, err = durationValue(m.val, "maxAge", time.Minute, 30*24*time.Hour); err != nil {
				return nil, err
			}
		case "maxFutureSkew":
			if p.maxFutureSkew, err = durationValue(m.val, "maxFutureSkew", 0, time.Hour); err != nil {
				return nil, err
			}
		case "maxScheduleAhead":
			if p.maxScheduleAhead, err = durationValue(m.val, "maxScheduleAhead", time.Minute, 366*24*time.Hour); err != nil {
				return nil, err
			}
		case "tap":
			if err := p.parseTAP(m.val); err != nil {
				return nil, err
			}
		case "sources":
			sawSources = true
			if err := p.parseSources(m.val); err != nil {
				return nil, err
			}
		case "protectedUsers":
			if allowNode, err = p.parseProtected(m.val); err != nil {
				return nil, err
			}
		case "notify":
			notifyNode = m.val
		case "limits":
			limitsNode = m.val
		case "approvers":
			approversNode = m.val
		case "approvals":
			approvalsNode = m.val
		default:
			return nil, nodeError(m.keyNode, m.key, "unknown setting (known: version, maxAge, maxFutureSkew, maxScheduleAhead, tap, sources, protectedUsers, notify, limits, approvers, approvals)")
		}
	}
	if !sawVersion {
		return nil, nodeError(root, "version", "required (version: 1)")
	}
	if !sawSources || len(p.sources) == 0 {
		return nil, nodeError(root, "sources", "required: at least one source")
	}
	if allowNode != nil {
		if err := p.parseAllow(allowNode); err != nil {
			return nil, err
		}
	}
	if notifyNode != nil {
		if err := p.parseNotify(notifyNode); err != nil {
			return nil, err
		}
	}
	if limitsNode != nil {
		if err := p.parseLimits(limitsNode); err != nil {
			return nil, err
		}
	}
	if approversNode != nil {
		if err := p.parseApprovers(approversNode); err != nil {
			return nil, err
		}
	}
	if approvalsNode != nil {
		if err := p.parseApprovals(approvalsNode); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func yamlError(err error) *PolicyError {
	pe := &PolicyError{Message: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Message = m[2]
	}
	return pe
}

func (p *Policy) parseTAP(n *yaml.Node) *PolicyError {
	members, err := mapping(n, "tap")
	if err != nil {
		return err
	}
	for _, m := range members {
		field := "tap." + m.key
		switch m.key {
		case "minLifetimeMinutes":
			if p.tap.minLifetime, err = intValue(m.val, field); err != nil {
				return err
			}
		case "maxLifetimeMinutes":
			if p.tap.maxLifetime, err = intValue(m.val, field); err != nil {
				return err
			}
		case "allowMultiUse":
			if p.tap.allowMultiUse, err = boolValue(m.val, field); err != nil {
				return err
			}
		case "maxStartDelay":
			if p.tap.maxStartDelay, err = durationValue(m.val, field, 0, 30*24*time.Hour); err != nil {
				return err
			}
		default:
			return nodeError(m.keyNode, field, "unknown setting (known: minLifetimeMinutes, maxLifetimeMinutes, allowMultiUse, maxStartDelay)")
		}
	}
	if p.tap.minLifetime < 10 || p.tap.maxLifetime > 43200 || p.tap.minLifetime > p.tap.maxLifetime {
		return nodeError(n, "tap", "need 10 <= minLifetimeMinutes (%d) <= maxLifetimeMinutes (%d) <= 43200", p.tap.minLifetime, p.tap.maxLifetime)
	}
	return nil
}

func (p *Policy) parseSources(n *yaml.Node) *PolicyError {
	members, err := mapping(n, "sources")
	if err != nil {
		return err
	}
	for _, m := range members {
		field := "sources." + m.key
		if m.key != "*" && checkString("source", m.key, reSource, maxSourceLen) != nil {
			return nodeError(m.keyNode, field, "not a valid event source (or *)")
		}
		sp, err := parseSource(m.val, field)
		if err != nil {
			return err
		}
		p.sources[m.key] = sp
	}
	return nil
}

func parseSource(n *yaml.Node, field string) (*sourcePolicy, *PolicyError) {
	members, err := mapping(n, field)
	if err != nil {
		return nil, err
	}
	sp := &sourcePolicy{}
	var verification *yaml.Node
	for _, m := range members {
		f := field + "." + m.key
		switch m.key {
		case "types":
			if sp.types, err = typeSet(m.val, f, true); err != nil {
				return nil, err
			}
		case "signature":
			s, err := stringValue(m.val, f)
			if err != nil {
				return nil, err
			}
			switch s {
			case "required":
				sp.requireSignature = true
			case "optional":
			default:
				return nil, nodeError(m.val, f, "must be required or optional")
			}
		case "keys":
			keys, nodes, err := stringList(m.val, f)
			if err != nil {
				return nil, err
			}
			for i, k := range keys {
				if !nkeys.IsValidPublicKey(k) || nkeys.IsValidPublicCurveKey(k) {
					return nil, nodeError(nodes[i], f+"["+strconv.Itoa(i)+"]", "not an nkeys ed25519 public key (U..., A..., O..., N... or C...)")
				}
				if slices.Contains(keys[:i], k) {
					return nil, nodeError(nodes[i], f+"["+strconv.Itoa(i)+"]", "duplicate key")
				}
			}
			sp.keys = keys
		case "requireVerification":
			verification = m.val
		case "priority":
			s, err := stringValue(m.val, f)
			if err != nil {
				return nil, err
			}
			if s != PriorityInteractive && s != PriorityBulk {
				return nil, nodeError(m.val, f, "must be interactive or bulk")
			}
			sp.priority = s
		default:
			return nil, nodeError(m.keyNode, f, "unknown setting (known: types, signature, keys, requireVerification, priority)")
		}
	}
	if sp.types == nil {
		return nil, nodeError(n, field+".types", "required: the event types this source may send")
	}
	if sp.requireSignature && len(sp.keys) == 0 {
		return nil, nodeError(n, field+".keys", "signature: required needs at least one pinned key")
	}
	if verification != nil {
		set, err := typeSet(verification, field+".requireVerification", false)
		if err != nil {
			return nil, err
		}
		for _, it := range sortedKeys(set) {
			if !sp.types["*"] && !sp.types[it] {
				return nil, nodeError(verification, field+".requireVerification", "type %s is not in this source's types", it)
			}
		}
		sp.requireVerification = set
	}
	return sp, nil
}

func (p *Policy) parseProtected(n *yaml.Node) (allow *yaml.Node, perr *PolicyError) {
	members, err := mapping(n, "protectedUsers")
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		f := "protectedUsers." + m.key
		switch m.key {
		case "upns":
			pats, nodes, err := stringList(m.val, f)
			if err != nil {
				return nil, err
			}
			for i, pat := range pats {
				pat = strings.ToLower(pat)
				if _, merr := path.Match(pat, ""); merr != nil || strings.ContainsAny(pat, "/\\") {
					return nil, nodeError(nodes[i], f+"["+strconv.Itoa(i)+"]", "not a valid pattern (use * and ? wildcards, e.g. *@admin.contoso.com)")
				}
				p.protected.upns = append(p.protected.upns, pat)
			}
		case "objectIds":
			ids, nodes, err := stringList(m.val, f)
			if err != nil {
				return nil, err
			}
			p.protected.objectIDs = map[string]bool{}
			for i, id := range ids {
				if !reGUID.MatchString(id) {
					return nil, nodeError(nodes[i], f+"["+strconv.Itoa(i)+"]", "not an object id (GUID)")
				}
				p.protected.objectIDs[strings.ToLower(id)] = true
			}
		case "anyDirectoryRole":
			if p.protected.anyDirectoryRole, err = boolValue(m.val, f); err != nil {
				return nil, err
			}
		case "allow":
			allow = m.val // checked once sources are known
		default:
			return nil, nodeError(m.keyNode, f, "unknown setting (known: upns, objectIds, anyDirectoryRole, allow)")
		}
	}
	return allow, nil
}

func (p *Policy) parseAllow(n *yaml.Node) *PolicyError {
	members, err := mapping(n, "protectedUsers.allow")
	if err != nil {
		return err
	}
	p.protected.allow = map[string]map[string]bool{}
	for _, m := range members {
		f := "protectedUsers.allow." + m.key
		sp := p.sources[m.key]
		if sp == nil {
			return nodeError(m.keyNode, f, "source is not in sources")
		}
		set, err := typeSet(m.val, f, false)
		if err != nil {
			return err
		}
		for _, t := range sortedKeys(set) {
			if !sp.types["*"] && !sp.types[t] {
				return nodeError(m.val, f, "type %s is not in this source's types", t)
			}
		}
		p.protected.allow[m.key] = set
	}
	return nil
}

// typeSet reads a list of event types; "*" (all types) only if wildcard.
func typeSet(n *yaml.Node, field string, wildcard bool) (map[string]bool, *PolicyError) {
	types, nodes, err := stringList(n, field)
	if err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, nodeError(n, field, "must list at least one event type")
	}
	set := map[string]bool{}
	for i, t := range types {
		f := field + "[" + strconv.Itoa(i) + "]"
		switch {
		case t == "*" && wildcard:
		case t == "*":
			return nil, nodeError(nodes[i], f, "* is not allowed here; list the types")
		case !KnownType(t):
			return nil, nodeError(nodes[i], f, "unknown event type %s", quote(t))
		}
		if set[t] {
			return nil, nodeError(nodes[i], f, "duplicate type")
		}
		set[t] = true
	}
	return set, nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// YAML walking helpers. They refuse aliases and anchors: a policy is short,
// and aliases would let one line silently stand for another.

type yamlMember struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

func nodeError(n *yaml.Node, field, format string, args ...any) *PolicyError {
	return &PolicyError{Line: n.Line, Column: n.Column, Field: field, Message: fmt.Sprintf(format, args...)}
}

func checkNode(n *yaml.Node, field string) *PolicyError {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return nodeError(n, field, "YAML anchors and aliases are not supported")
	}
	return nil
}

func mapping(n *yaml.Node, field string) ([]yamlMember, *PolicyError) {
	if err := checkNode(n, field); err != nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, nodeError(n, field, "must be a mapping")
	}
	members := make([]yamlMember, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if err := checkNode(k, field); err != nil {
			return nil, err
		}
		if err := checkNode(v, joinField(field, k.Value)); err != nil {
			return nil, err
		}
		if k.Kind != yaml.ScalarNode || (k.ShortTag() != "!!str" && k.ShortTag() != "!!int") {
			return nil, nodeError(k, field, "keys must be plain strings")
		}
		for _, m := range members {
			if m.key == k.Value {
				return nil, nodeError(k, joinField(field, k.Value), "duplicate key (first at line %d)", m.keyNode.Line)
			}
		}
		members = append(members, yamlMember{key: k.Value, keyNode: k, val: v})
	}
	return members, nil
}

func joinField(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func scalar(n *yaml.Node, field, tag, want string) (string, *PolicyError) {
	if err := checkNode(n, field); err != nil {
		return "", err
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tag {
		return "", nodeError(n, field, "must be %s", want)
	}
	return n.Value, nil
}

func stringValue(n *yaml.Node, field string) (string, *PolicyError) {
	return scalar(n, field, "!!str", "a string")
}

func intValue(n *yaml.Node, field string) (int, *PolicyError) {
	s, err := scalar(n, field, "!!int", "an integer")
	if err != nil {
		return 0, err
	}
	v, perr := strconv.Atoi(s)
	if perr != nil {
		return 0, nodeError(n, field, "must be a decimal integer")
	}
	return v, nil
}

func boolValue(n *yaml.Node, field string) (bool, *PolicyError) {
	s, err := scalar(n, field, "!!bool", "true or false")
	if err != nil {
		return false, err
	}
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, nodeError(n, field, "must be true or false")
}

func durationValue(n *yaml.Node, field string, lo, hi time.Duration) (time.Duration, *PolicyError) {
	s, err := stringValue(n, field)
	if err != nil {
		return 0, nodeError(n, field, "must be a duration such as 24h or 5m")
	}
	d, perr := time.ParseDuration(s)
	if perr != nil {
		return 0, nodeError(n, field, "must be a duration such as 24h or 5m")
	}
	if d < lo || d > hi {
		return 0, nodeError(n, field, "must be between %s and %s", lo, hi)
	}
	return d, nil
}

func stringList(n *yaml.Node, field string) ([]string, []*yaml.Node, *PolicyError) {
	if err := checkNode(n, field); err != nil {
		return nil, nil, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, nil, nodeError(n, field, "must be a list")
	}
	out := make([]string, 0, len(n.Content))
	for i, el := range n.Content {
		s, err := stringValue(el, field+"["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, nil, err
		}
		out = append(out, s)
	}
	return out, n.Content, nil
}

// Headers gives access to message headers; nats.Header and http.Header
// both satisfy it.
type Headers interface {
	Get(key string) string
}

// CheckAuth decides whether the event's source may send it: the source is
// in the policy (or the policy has a "*" source), the signature is valid
// when required or present (bad_signature), the type is allowed, the
// verification evidence is there when the policy requires it, and every
// TAP the event asks for is within the policy's bounds. raw must be the
// exact bytes received; h may be nil.
func (p *Policy) CheckAuth(ev *Event, raw []byte, h Headers) error {
	if ev == nil {
		return newError(CodeInternal, "", "check auth: nil event")
	}
	if IsApproval(ev.Type) {
		return p.checkApprovalAuth(raw, h)
	}
	sp := p.source(ev.Source)
	if sp == nil {
		return newError(CodePolicyDenied, "source", "source %s is not in the policy", quote(ev.Source))
	}
	var sig, signer string
	if h != nil {
		sig, signer = h.Get(HeaderSignature), h.Get(HeaderSigner)
	}
	switch {
	case sig == "" && signer == "":
		if sp.requireSignature {
			return newError(CodeBadSignature, "", "source %s must sign its events (headers %s and %s)", quote(ev.Source), HeaderSignature, HeaderSigner)
		}
	case sig == "" || signer == "":
		return newError(CodeBadSignature, "", "headers %s and %s must be set together", HeaderSignature, HeaderSigner)
	default:
		if len(sp.keys) > 0 && !slices.Contains(sp.keys, signer) {
			return newError(CodeBadSignature, "", "signer is not a key pinned for source %s", quote(ev.Source))
		}
		if err := Verify(raw, sig, signer); err != nil {
			return err
		}
	}
	if !sp.types["*"] && !sp.types[ev.Type] {
		return newError(CodePolicyDenied, "type", "source %s may not send %s", quote(ev.Source), ev.Type)
	}
	if sp.requireVerification[ev.Type] && ev.Verification == nil {
		return newError(CodePolicyDenied, "data.verification", "source %s must send verification evidence with %s", quote(ev.Source), ev.Type)
	}
	ops, err := Plan(ev)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if op.Kind == OpIssueTAP {
			if err := p.checkTAP(ev, op.TAP); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Policy) source(name string) *sourcePolicy {
	if sp := p.sources[name]; sp != nil {
		return sp
	}
	return p.sources["*"]
}

func (p *Policy) checkTAP(ev *Event, t *TAPSpec) error {
	b := p.tap
	if t.LifetimeMinutes != 0 && (t.LifetimeMinutes < b.minLifetime || t.LifetimeMinutes > b.maxLifetime) {
		return newError(CodePolicyDenied, "", "TAP lifetime %d minutes is outside the policy's %d..%d", t.LifetimeMinutes, b.minLifetime, b.maxLifetime)
	}
	if !t.UsableOnce && !b.allowMultiUse {
		return newError(CodePolicyDenied, "", "the policy allows only one-time TAPs (usableOnce: true)")
	}
	// Instants, not durations (see CheckFreshness); Add of a delay of at
	// most 30 days cannot overflow for any time the decoder reads.
	if t.Start != nil && t.Start.After(ev.Time.Add(b.maxStartDelay)) {
		return newError(CodePolicyDenied, "", "TAP start is more than %s after the event's time", b.maxStartDelay)
	}
	return nil
}

// CheckFreshness rejects events older than the policy's maximum age
// (expired) or dated further ahead than its clock-skew allowance
// (future_event), measured from now. It compares instants, never
// durations: now.Sub(ev.Time) saturates about 292 years out (and negating
// the saturated minimum overflows), so a duration test lets an event dated
// 9999-12-31 through.
func (p *Policy) CheckFreshness(ev *Event, now time.Time) error {
	if ev == nil {
		return newError(CodeInternal, "", "check freshness: nil event")
	}
	switch {
	case ev.Time.Before(now.Add(-p.maxAge)):
		return newError(CodeExpired, "time", "event is %s old; the policy accepts up to %s", gap(now, ev.Time), p.maxAge)
	case ev.Time.After(now.Add(p.maxFutureSkew)):
		return newError(CodeFutureEvent, "time", "event is dated %s ahead; the policy allows %s of clock skew", gap(ev.Time, now), p.maxFutureSkew)
	}
	return nil
}

// gap renders how far later is after earlier, to the second. A gap too
// large for a time.Duration (about 292 years) is given in whole years, as
// a lower bound, instead of a saturated duration.
func gap(later, earlier time.Time) string {
	d := later.Sub(earlier)
	if earlier.Add(d).Equal(later) {
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("at least %d years", later.UTC().Year()-earlier.UTC().Year()-1)
}

// Target is the resolved user an event acts on.
type Target struct {
	ObjectID       string
	UPN            string
	DirectoryRoles []string // names or ids of the directory roles the user holds
}

// NeedsRoles reports whether CheckTarget or ApprovalRule needs
// Target.DirectoryRoles for this event, so that a worker reads the user's
// roles only when they matter: the event writes, and the policy protects
// role holders (and does not already allow the event on protected users)
// or has an approval rule for role holders that may apply to it.
func (p *Policy) NeedsRoles(ev *Event) bool {
	if ev == nil || ReadOnly(ev.Type) {
		return false
	}
	return p.protected.anyDirectoryRole && !p.allowedOnProtected(ev) || p.approvalNeedsRoles(ev)
}

// CheckTarget refuses (protected_user) an event that writes to a protected
// user, unless the policy allows the event's source to send its type for
// protected users. A user is protected when its object id is listed, its
// UPN matches a pattern (case-insensitive), or, when the policy says so, it
// holds any directory role. Read-only events are always allowed.
func (p *Policy) CheckTarget(ev *Event, t Target) error {
	if ev == nil {
		return newError(CodeInternal, "", "check target: nil event")
	}
	if ReadOnly(ev.Type) || p.allowedOnProtected(ev) {
		return nil
	}
	why := p.protectedReason(ev, t)
	if why == "" {
		return nil
	}
	return newError(CodeProtectedUser, "subject", "the user is protected (%s); source %s may not send %s for protected users", why, quote(ev.Source), ev.Type)
}

func (p *Policy) allowedOnProtected(ev *Event) bool {
	key := ev.Source
	if p.sources[key] == nil {
		key = "*" // the source is governed by the "*" entry, if any
	}
	return p.protected.allow[key][ev.Type]
}

func (p *Policy) protectedReason(ev *Event, t Target) string { return p.protected.reason(ev, t) }
