package events

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The helpdesk-safety parts of a policy: whom a change is notified to
// (notify:) and how many events may act within a window (limits:).

// notifyPolicy is the notify: section.
type notifyPolicy struct {
	def     NotifyMode              // for every source and type not listed; user unless set
	sources map[string]*notifyEntry // by source; "*" for sources not listed
}

type notifyEntry struct {
	all   NotifyMode            // the source's own default ("" = the policy's)
	types map[string]NotifyMode // by event type
}

// Notify returns whom a change made by an event of type typ from source
// goes to: the type's entry under the source, else the source's "*", else
// the "*" source's, else notify.default (user when the policy says
// nothing). Read-only types are never notified (none).
func (p *Policy) Notify(source, typ string) NotifyMode {
	if ReadOnly(typ) || !KnownType(typ) {
		return NotifyNone
	}
	n := &p.notify
	e := n.sources[source]
	if e == nil {
		e = n.sources["*"]
	}
	if e != nil {
		if m, ok := e.types[typ]; ok {
			return m
		}
		if e.all != "" {
			return e.all
		}
	}
	if n.def == "" {
		return NotifyUser
	}
	return n.def
}

func (p *Policy) parseNotify(n *yaml.Node) *PolicyError {
	members, err := mapping(n, "notify")
	if err != nil {
		return err
	}
	p.notify.sources = map[string]*notifyEntry{}
	for _, m := range members {
		f := "notify." + m.key
		switch m.key {
		case "default":
			if p.notify.def, err = notifyModeValue(m.val, f); err != nil {
				return err
			}
		case "sources":
			if err := p.parseNotifySources(m.val); err != nil {
				return err
			}
		default:
			return nodeError(m.keyNode, f, "unknown setting (known: default, sources)")
		}
	}
	return nil
}

func (p *Policy) parseNotifySources(n *yaml.Node) *PolicyError {
	members, err := mapping(n, "notify.sources")
	if err != nil {
		return err
	}
	for _, m := range members {
		f := "notify.sources." + m.key
		sp := p.sources[m.key]
		if m.key != "*" && sp == nil {
			return nodeError(m.keyNode, f, "source is not in sources")
		}
		e := &notifyEntry{types: map[string]NotifyMode{}}
		if m.val.Kind == yaml.ScalarNode {
			if e.all, err = notifyModeValue(m.val, f); err != nil {
				return err
			}
			p.notify.sources[m.key] = e
			continue
		}
		if m.val.Kind != yaml.MappingNode && m.val.Kind != yaml.AliasNode {
			return nodeError(m.val, f, "must be a mode (user, user+manager or none) or a mapping of event types to modes")
		}
		types, err := mapping(m.val, f)
		if err != nil {
			return err
		}
		if len(types) == 0 {
			return nodeError(m.val, f, "must name at least one event type (or \"*\")")
		}
		for _, t := range types {
			tf := f + "." + t.key
			mode, err := notifyModeValue(t.val, tf)
			if err != nil {
				return err
			}
			switch {
			case t.key == "*":
				e.all = mode
				continue
			case !KnownType(t.key):
				return nodeError(t.keyNode, tf, "unknown event type %s", quote(t.key))
			case ReadOnly(t.key):
				return nodeError(t.keyNode, tf, "%s writes nothing and is never notified", t.key)
			case sp != nil && !sp.types["*"] && !sp.types[t.key]:
				return nodeError(t.keyNode, tf, "type %s is not in this source's types", t.key)
			}
			e.types[t.key] = mode
		}
		p.notify.sources[m.key] = e
	}
	return nil
}

func notifyModeValue(n *yaml.Node, field string) (NotifyMode, *PolicyError) {
	s, err := stringValue(n, field)
	if err != nil {
		return "", nodeError(n, field, "must be user, user+manager or none")
	}
	if m := NotifyMode(s); m.Valid() {
		return m, nil
	}
	return "", nodeError(n, field, "must be user, user+manager or none, not %s", quote(s))
}

// What a limit rule counts by (limits[].per).
const (
	LimitPerUser      = "user"      // the resolved target user (object id)
	LimitPerRequester = "requester" // data.verification.verifiedBy, case-insensitive
	LimitPerSigner    = "signer"    // the nkeys public key that signed the event
	LimitPerSource    = "source"    // the event's source
)

// Bounds of a limit rule.
const (
	MaxLimit       = 10000
	MinLimitWindow = time.Minute
	MaxLimitWindow = 30 * 24 * time.Hour
)

// LimitRule is one entry of the policy's limits: at most Max events of
// Types from Sources per Per within any Window.
type LimitRule struct {
	Name    string        // unique; the label of authflow_rate_limited_total
	Per     string        // LimitPerUser, LimitPerRequester, LimitPerSigner or LimitPerSource
	Types   []string      // the event types counted; every type that writes when the policy lists none
	Sources []string      // the sources counted; every source when the policy lists none
	Max     int           // 1..MaxLimit
	Window  time.Duration // MinLimitWindow..MaxLimitWindow, a sliding window
}

// LimitCheck is one counter an event must pass: the rule, and the scope
// it counts in (an object id, a lower-case requester, a signer key or a
// source).
type LimitCheck struct {
	Rule  LimitRule
	Scope string
}

// Limits returns the policy's limit rules, in policy order.
func (p *Policy) Limits() []LimitRule {
	out := make([]LimitRule, len(p.limits))
	for i, r := range p.limits {
		r.Types, r.Sources = slices.Clone(r.Types), slices.Clone(r.Sources)
		out[i] = r
	}
	return out
}

// MaxLimitWindow returns the longest window of the policy's limit rules (0
// when it has none): how long a counter must be kept.
func (p *Policy) MaxLimitWindow() time.Duration {
	var w time.Duration
	for _, r := range p.limits {
		w = max(w, r.Window)
	}
	return w
}

// LimitChecks returns the counters event ev must pass, in policy order:
// every rule whose types and sources match, with its scope. t must be the
// resolved user (per-user rules count by object id, so that the same user
// named by UPN or by id shares one counter); signer is the verified
// signer's public key ("" when unsigned). Rules whose scope the event does
// not have (a requester rule and an event without data.verification, a
// signer rule and an unsigned event) do not apply. Dry runs count nowhere.
func (p *Policy) LimitChecks(ev *Event, t Target, signer string) []LimitCheck {
	if ev == nil || ev.DryRun {
		return nil
	}
	var out []LimitCheck
	for _, r := range p.limits {
		if !r.matches(ev) {
			continue
		}
		var scope string
		switch r.Per {
		case LimitPerUser:
			scope = strings.ToLower(t.ObjectID)
			if scope == "" {
				scope = strings.ToLower(ev.User.ObjectID)
			}
		case LimitPerRequester:
			if ev.Verification != nil {
				scope = strings.ToLower(strings.TrimSpace(ev.Verification.VerifiedBy))
			}
		case LimitPerSigner:
			scope = signer
		case LimitPerSource:
			scope = ev.Source
		}
		if scope != "" {
			r.Types, r.Sources = slices.Clone(r.Types), slices.Clone(r.Sources)
			out = append(out, LimitCheck{Rule: r, Scope: scope})
		}
	}
	return out
}

func (r *LimitRule) matches(ev *Event) bool {
	if len(r.Types) == 0 {
		if ReadOnly(ev.Type) {
			return false
		}
	} else if !slices.Contains(r.Types, ev.Type) {
		return false
	}
	return len(r.Sources) == 0 || slices.Contains(r.Sources, ev.Source)
}

// RateLimitError is the error of an event refused by rule (code
// rate_limited). The message names the rule and its bound, never the
// scope's value.
func RateLimitError(rule LimitRule) error {
	what := map[string]string{LimitPerUser: "user", LimitPerRequester: "requester", LimitPerSigner: "signer key", LimitPerSource: "source"}[rule.Per]
	return newError(CodeRateLimited, "", "limit %s reached: at most %d events per %s for this %s", rule.Name, rule.Max, rule.Window, what)
}

var reLimitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

func (p *Policy) parseLimits(n *yaml.Node) *PolicyError {
	if err := checkNode(n, "limits"); err != nil {
		return err
	}
	if n.Kind != yaml.SequenceNode {
		return nodeError(n, "limits", "must be a list of rules")
	}
	for i, el := range n.Content {
		f := "limits[" + strconv.Itoa(i) + "]"
		r, err := p.parseLimit(el, f)
		if err != nil {
			return err
		}
		for _, o := range p.limits {
			if o.Name == r.Name {
				return nodeError(el, f+".name", "duplicate rule name %s", r.Name)
			}
		}
		p.limits = append(p.limits, r)
	}
	return nil
}

func (p *Policy) parseLimit(n *yaml.Node, field string) (LimitRule, *PolicyError) {
	var r LimitRule
	members, err := mapping(n, field)
	if err != nil {
		return r, err
	}
	var sawWindow bool
	for _, m := range members {
		f := field + "." + m.key
		switch m.key {
		case "name":
			if r.Name, err = stringValue(m.val, f); err != nil {
				return r, err
			}
			if !reLimitName.MatchString(r.Name) {
				return r, nodeError(m.val, f, "must be 1..64 letters, digits, - and _ (it becomes a metric label)")
			}
		case "per":
			if r.Per, err = stringValue(m.val, f); err != nil {
				return r, err
			}
			switch r.Per {
			case LimitPerUser, LimitPerRequester, LimitPerSigner, LimitPerSource:
			default:
				return r, nodeError(m.val, f, "must be user, requester, signer or source")
			}
		case "types":
			set, err := typeSet(m.val, f, false)
			if err != nil {
				return r, err
			}
			r.Types = sortedKeys(set)
		case "sources":
			names, nodes, err := stringList(m.val, f)
			if err != nil {
				return r, err
			}
			if len(names) == 0 {
				return r, nodeError(m.val, f, "must list at least one source (omit it for every source)")
			}
			for j, s := range names {
				sf := f + "[" + strconv.Itoa(j) + "]"
				switch {
				case s == "*":
					return r, nodeError(nodes[j], sf, "* is not allowed here; omit sources for every source")
				case p.sources[s] == nil:
					return r, nodeError(nodes[j], sf, "source is not in sources")
				case slices.Contains(names[:j], s):
					return r, nodeError(nodes[j], sf, "duplicate source")
				}
			}
			r.Sources = names
		case "max":
			if r.Max, err = intValue(m.val, f); err != nil {
				return r, err
			}
			if r.Max < 1 || r.Max > MaxLimit {
				return r, nodeError(m.val, f, "must be between 1 and %d", MaxLimit)
			}
		case "window":
			sawWindow = true
			if r.Window, err = durationValue(m.val, f, MinLimitWindow, MaxLimitWindow); err != nil {
				return r, err
			}
		default:
			return r, nodeError(m.keyNode, f, "unknown setting (known: name, per, types, sources, max, window)")
		}
	}
	switch {
	case r.Name == "":
		return r, nodeError(n, field+".name", "required")
	case r.Per == "":
		return r, nodeError(n, field+".per", "required: user, requester, signer or source")
	case r.Max == 0:
		return r, nodeError(n, field+".max", "required")
	case !sawWindow:
		return r, nodeError(n, field+".window", "required, e.g. 24h")
	}
	// A rule that can never count anything is a mistake in the policy.
	for _, t := range r.Types {
		if len(r.Sources) == 0 {
			if !p.anySourceSends(t) {
				return r, nodeError(n, field+".types", "no source may send %s", t)
			}
			continue
		}
		if !slices.ContainsFunc(r.Sources, func(s string) bool { sp := p.sources[s]; return sp.types["*"] || sp.types[t] }) {
			return r, nodeError(n, field+".types", "none of the rule's sources may send %s", t)
		}
	}
	return r, nil
}

func (p *Policy) anySourceSends(typ string) bool {
	for _, sp := range p.sources {
		if sp.types["*"] || sp.types[typ] {
			return true
		}
	}
	return false
}

// String renders the rule for logs: "name: at most max per per in window".
func (r LimitRule) String() string {
	return fmt.Sprintf("%s: at most %d per %s in %s", r.Name, r.Max, r.Per, r.Window)
}
