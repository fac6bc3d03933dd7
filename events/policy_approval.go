package events

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"
)

// The four-eyes parts of a policy: who may decide (approvers:) and which
// events wait for a decision (approvals:). See approval.go for the flow.

// Bounds of an approval rule.
const (
	DefaultApprovalTimeout = time.Hour
	MinApprovalTimeout     = time.Minute
	// MaxApprovalTimeout is a week: a parked event lives in the ledger and
	// the events stream, whose default retention is 7 days.
	MaxApprovalTimeout = 7 * 24 * time.Hour
)

// ApprovalRule is one entry of the policy's approvals: events of Types
// from Sources for the users it names wait for an approver, at most
// Timeout. A rule with Bulk set holds back only the events beyond
// Bulk.Max from one source within Bulk.Window.
type ApprovalRule struct {
	Name    string        // unique; named in pending results and errors
	Types   []string      // the types it holds back; every type that writes when the policy lists none
	Sources []string      // the sources; every source when the policy lists none
	Bulk    *BulkSize     // nil: every matching event waits
	Timeout time.Duration // MinApprovalTimeout..MaxApprovalTimeout; DefaultApprovalTimeout when not set
	// Approvers are the keys that may decide this rule's events: a subset
	// of the policy's approvers, all of them when the policy lists none.
	Approvers []string

	users *protectedUsers // the users it applies to; nil: every user
}

// BulkSize is a bulk rule's threshold: more than Max events within any
// Window (sliding) from one source.
type BulkSize struct {
	Max    int
	Window time.Duration
}

// ApprovalCounter counts events for the bulk rules of the policy. The
// worker passes one backed by the counters every replica shares
// (limits.Limiter has the method).
type ApprovalCounter interface {
	// Admit counts the event with key eventKey in c's counter when it
	// holds fewer than c.Rule.Max events within c.Rule.Window, and reports
	// whether the event is counted (by this call or an earlier one). A
	// full counter leaves the event out and reports false.
	Admit(ctx context.Context, eventKey string, c LimitCheck) (bool, error)
}

// Approvers returns the public keys of the policy's approvers.
func (p *Policy) Approvers() []string { return slices.Clone(p.approvers) }

// IsApprover reports whether pub is one of the policy's approvers.
func (p *Policy) IsApprover(pub string) bool { return pub != "" && slices.Contains(p.approvers, pub) }

// Approvals returns the policy's approval rules, in policy order.
func (p *Policy) Approvals() []ApprovalRule {
	out := make([]ApprovalRule, len(p.approvals))
	for i := range p.approvals {
		out[i] = p.approvals[i].clone()
	}
	return out
}

// MaxApprovalTimeout returns the longest timeout of the policy's approval
// rules (0 when it has none): how long a parked event must be kept.
func (p *Policy) MaxApprovalTimeout() time.Duration {
	var d time.Duration
	for _, r := range p.approvals {
		d = max(d, r.Timeout)
	}
	return d
}

// MaxBulkWindow returns the longest window of the policy's bulk approval
// rules (0 when it has none): how long their counters must be kept.
func (p *Policy) MaxBulkWindow() time.Duration {
	var d time.Duration
	for _, r := range p.approvals {
		if r.Bulk != nil {
			d = max(d, r.Bulk.Window)
		}
	}
	return d
}

// ApprovalRule returns the first rule, in policy order, that holds event
// ev back for approval, and false when none does. t is the resolved user
// (with its directory roles when NeedsRoles says so). A rule applies when
// the event's type, source and user match it; a bulk rule then counts the
// event with counter and holds it back only when its count is full
// (counter may be nil when the policy has no bulk rules). Dry runs and
// read-only events never wait. Call it once, when the event is first
// accepted: once parked, the parked state decides, not the counters.
func (p *Policy) ApprovalRule(ctx context.Context, ev *Event, t Target, counter ApprovalCounter) (ApprovalRule, bool, error) {
	if ev == nil || ev.DryRun || ReadOnly(ev.Type) {
		return ApprovalRule{}, false, nil
	}
	for i := range p.approvals {
		r := &p.approvals[i]
		if !r.matches(ev) || (r.users != nil && r.users.reason(ev, t) == "") {
			continue
		}
		if r.Bulk != nil {
			if counter == nil {
				return ApprovalRule{}, false, newError(CodeInternal, "", "approval rule %s counts events, and no counter was given", r.Name)
			}
			counted, err := counter.Admit(ctx, ev.Key(), r.bulkCheck(ev.Source))
			if err != nil {
				return ApprovalRule{}, false, fmt.Errorf("approval rule %s: count: %w", r.Name, err)
			}
			if counted {
				continue
			}
		}
		return r.clone(), true, nil
	}
	return ApprovalRule{}, false, nil
}

// bulkCheck is the counter of a bulk rule for one source. Its name has a
// dot, which limit rule names cannot, so it never shares a counter with a
// limit.
func (r *ApprovalRule) bulkCheck(source string) LimitCheck {
	return LimitCheck{
		Rule: LimitRule{Name: "approval." + r.Name, Per: LimitPerSource, Types: slices.Clone(r.Types),
			Sources: slices.Clone(r.Sources), Max: r.Bulk.Max, Window: r.Bulk.Window},
		Scope: source,
	}
}

func (r *ApprovalRule) matches(ev *Event) bool {
	if len(r.Types) > 0 && !slices.Contains(r.Types, ev.Type) {
		return false
	}
	return len(r.Sources) == 0 || slices.Contains(r.Sources, ev.Source)
}

func (r *ApprovalRule) clone() ApprovalRule {
	c := *r
	c.Types, c.Sources, c.Approvers = slices.Clone(r.Types), slices.Clone(r.Sources), slices.Clone(r.Approvers)
	if r.Bulk != nil {
		b := *r.Bulk
		c.Bulk = &b
	}
	return c
}

// approvalRule returns the rule named name.
func (p *Policy) approvalRule(name string) (ApprovalRule, bool) {
	for i := range p.approvals {
		if p.approvals[i].Name == name {
			return p.approvals[i].clone(), true
		}
	}
	return ApprovalRule{}, false
}

// approvalNeedsRoles reports whether a rule that may hold ev back decides
// by the user's directory roles.
func (p *Policy) approvalNeedsRoles(ev *Event) bool {
	if ev.DryRun {
		return false
	}
	for i := range p.approvals {
		r := &p.approvals[i]
		if r.users != nil && r.users.anyDirectoryRole && r.matches(ev) {
			return true
		}
	}
	return false
}

// checkApprovalAuth is CheckAuth for approval events: the approver's key
// is the authority, not the source, so the source need not be in the
// policy, but a valid signature by one of the policy's approvers is
// required.
func (p *Policy) checkApprovalAuth(raw []byte, h Headers) error {
	var sig, signer string
	if h != nil {
		sig, signer = h.Get(HeaderSignature), h.Get(HeaderSigner)
	}
	if sig == "" || signer == "" {
		return newError(CodeBadSignature, "", "an approval must be signed by an approver (headers %s and %s)", HeaderSignature, HeaderSigner)
	}
	if err := Verify(raw, sig, signer); err != nil {
		return err
	}
	if !p.IsApprover(signer) {
		return newError(CodeApprovalInvalid, "", "the signer %s is not an approver of the policy (approvers)", signer)
	}
	return nil
}

// reason reports why the user is in the set ("" when it is not): a listed
// object id, a UPN matching a pattern (case-insensitive), or, when the set
// says so, any directory role.
func (pr *protectedUsers) reason(ev *Event, t Target) string {
	for _, id := range []string{t.ObjectID, ev.User.ObjectID} {
		if id != "" && pr.objectIDs[strings.ToLower(id)] {
			return "listed object id"
		}
	}
	for _, upn := range []string{t.UPN, ev.User.UPN} {
		if upn == "" {
			continue
		}
		upn = strings.ToLower(upn)
		for _, pat := range pr.upns {
			if ok, _ := path.Match(pat, upn); ok {
				return "UPN matches a protected pattern"
			}
		}
	}
	if pr.anyDirectoryRole && len(t.DirectoryRoles) > 0 {
		return "holds a directory role"
	}
	return ""
}

func (p *Policy) parseApprovers(n *yaml.Node) *PolicyError {
	keys, nodes, err := stringList(n, "approvers")
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return nodeError(n, "approvers", "must list at least one key (omit it for none)")
	}
	for i, k := range keys {
		f := "approvers[" + strconv.Itoa(i) + "]"
		switch {
		case !reUserKey.MatchString(k) || !nkeys.IsValidPublicUserKey(k):
			return nodeError(nodes[i], f, "not an nkeys user public key (U...; authflow keys new-signing makes one)")
		case slices.Contains(keys[:i], k):
			return nodeError(nodes[i], f, "duplicate key")
		}
	}
	p.approvers = keys
	return nil
}

func (p *Policy) parseApprovals(n *yaml.Node) *PolicyError {
	if err := checkNode(n, "approvals"); err != nil {
		return err
	}
	if n.Kind != yaml.SequenceNode {
		return nodeError(n, "approvals", "must be a list of rules")
	}
	if len(n.Content) > 0 && len(p.approvers) == 0 {
		// Fail closed would park every matching event until its timeout.
		return nodeError(n, "approvals", "the rules need approvers: list their public keys under approvers")
	}
	for i, el := range n.Content {
		f := "approvals[" + strconv.Itoa(i) + "]"
		r, err := p.parseApproval(el, f)
		if err != nil {
			return err
		}
		if _, dup := p.approvalRule(r.Name); dup {
			return nodeError(el, f+".name", "duplicate rule name %s", r.Name)
		}
		p.approvals = append(p.approvals, r)
	}
	return nil
}

func (p *Policy) parseApproval(n *yaml.Node, field string) (ApprovalRule, *PolicyError) {
	r := ApprovalRule{Timeout: DefaultApprovalTimeout}
	members, err := mapping(n, field)
	if err != nil {
		return r, err
	}
	for _, m := range members {
		f := field + "." + m.key
		switch m.key {
		case "name":
			if r.Name, err = stringValue(m.val, f); err != nil {
				return r, err
			}
			if !reLimitName.MatchString(r.Name) {
				return r, nodeError(m.val, f, "must be 1..64 letters, digits, - and _")
			}
		case "types":
			set, err := typeSet(m.val, f, false)
			if err != nil {
				return r, err
			}
			for i, el := range m.val.Content {
				if ReadOnly(el.Value) {
					return r, nodeError(el, f+"["+strconv.Itoa(i)+"]", "%s writes nothing and never waits for approval", el.Value)
				}
			}
			r.Types = sortedKeys(set)
		case "sources":
			if r.Sources, err = p.ruleSources(m.val, f); err != nil {
				return r, err
			}
		case "users":
			if r.users, err = parseRuleUsers(m.val, f); err != nil {
				return r, err
			}
		case "bulk":
			if r.Bulk, err = parseBulk(m.val, f); err != nil {
				return r, err
			}
		case "timeout":
			if r.Timeout, err = durationValue(m.val, f, MinApprovalTimeout, MaxApprovalTimeout); err != nil {
				return r, err
			}
		case "approvers":
			keys, nodes, err := stringList(m.val, f)
			if err != nil {
				return r, err
			}
			if len(keys) == 0 {
				return r, nodeError(m.val, f, "must list at least one key (omit it for every approver)")
			}
			for i, k := range keys {
				kf := f + "[" + strconv.Itoa(i) + "]"
				switch {
				case !p.IsApprover(k):
					return r, nodeError(nodes[i], kf, "not one of the policy's approvers")
				case slices.Contains(keys[:i], k):
					return r, nodeError(nodes[i], kf, "duplicate key")
				}
			}
			r.Approvers = keys
		default:
			return r, nodeError(m.keyNode, f, "unknown setting (known: name, types, sources, users, bulk, timeout, approvers)")
		}
	}
	if r.Name == "" {
		return r, nodeError(n, field+".name", "required")
	}
	// A rule that can never hold anything back is a mistake in the policy.
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

// ruleSources reads a rule's list of sources: each in sources, no "*".
func (p *Policy) ruleSources(n *yaml.Node, field string) ([]string, *PolicyError) {
	names, nodes, err := stringList(n, field)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, nodeError(n, field, "must list at least one source (omit it for every source)")
	}
	for j, s := range names {
		sf := field + "[" + strconv.Itoa(j) + "]"
		switch {
		case s == "*":
			return nil, nodeError(nodes[j], sf, "* is not allowed here; omit sources for every source")
		case p.sources[s] == nil:
			return nil, nodeError(nodes[j], sf, "source is not in sources")
		case slices.Contains(names[:j], s):
			return nil, nodeError(nodes[j], sf, "duplicate source")
		}
	}
	return names, nil
}

// parseRuleUsers reads a rule's users: the settings of protectedUsers
// but allow.
func parseRuleUsers(n *yaml.Node, field string) (*protectedUsers, *PolicyError) {
	members, err := mapping(n, field)
	if err != nil {
		return nil, err
	}
	u := &protectedUsers{}
	for _, m := range members {
		f := field + "." + m.key
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
				u.upns = append(u.upns, pat)
			}
		case "objectIds":
			ids, nodes, err := stringList(m.val, f)
			if err != nil {
				return nil, err
			}
			u.objectIDs = map[string]bool{}
			for i, id := range ids {
				if !reGUID.MatchString(id) {
					return nil, nodeError(nodes[i], f+"["+strconv.Itoa(i)+"]", "not an object id (GUID)")
				}
				u.objectIDs[strings.ToLower(id)] = true
			}
		case "anyDirectoryRole":
			if u.anyDirectoryRole, err = boolValue(m.val, f); err != nil {
				return nil, err
			}
		default:
			return nil, nodeError(m.keyNode, f, "unknown setting (known: upns, objectIds, anyDirectoryRole)")
		}
	}
	if len(u.upns) == 0 && len(u.objectIDs) == 0 && !u.anyDirectoryRole {
		return nil, nodeError(n, field, "names nobody: set upns, objectIds or anyDirectoryRole: true (omit users for every user)")
	}
	return u, nil
}

func parseBulk(n *yaml.Node, field string) (*BulkSize, *PolicyError) {
	members, err := mapping(n, field)
	if err != nil {
		return nil, err
	}
	b := &BulkSize{}
	for _, m := range members {
		f := field + "." + m.key
		switch m.key {
		case "max":
			if b.Max, err = intValue(m.val, f); err != nil {
				return nil, err
			}
			if b.Max < 1 || b.Max > MaxLimit {
				return nil, nodeError(m.val, f, "must be between 1 and %d", MaxLimit)
			}
		case "window":
			if b.Window, err = durationValue(m.val, f, MinLimitWindow, MaxLimitWindow); err != nil {
				return nil, err
			}
		default:
			return nil, nodeError(m.keyNode, f, "unknown setting (known: max, window)")
		}
	}
	switch {
	case b.Max == 0:
		return nil, nodeError(n, field+".max", "required: how many events run before the rest wait")
	case b.Window == 0:
		return nil, nodeError(n, field+".window", "required, e.g. 10m")
	}
	return b, nil
}
