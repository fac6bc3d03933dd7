package graphclienttest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// serveAdmin serves /_emulator/...: JSON, no token, no faults, not counted.
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request, rest string) {
	rest = strings.Trim(rest, "/")
	name, id, hasID := strings.Cut(rest, "/")
	if hasID {
		var err error
		if id, err = url.PathUnescape(id); err != nil {
			adminError(w, r, http.StatusBadRequest, "badRequest", "invalid URL escape in the path")
			return
		}
	}
	switch {
	case name == "" && !hasID:
		e.adminIndex(w, r)
	case name == "users" && !hasID:
		e.adminUsers(w, r)
	case name == "users":
		e.adminUser(w, r, id)
	case name == "faults" && !hasID:
		e.adminFaults(w, r)
	case name == "stats" && !hasID:
		e.adminStats(w, r)
	case name == "requests" && !hasID:
		e.adminRequests(w, r)
	case name == "config" && !hasID:
		e.adminConfig(w, r)
	case name == "mail":
		e.adminMail(w, r, id, hasID) // mail.go
	default:
		adminError(w, r, http.StatusNotFound, "itemNotFound", "unknown admin resource /_emulator/"+rest+"; see GET /_emulator/")
	}
}

func adminError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	crid := r.Header.Get("client-request-id")
	if !validHeaderValue(crid) {
		crid = ""
	}
	writeError(w, status, code, msg, newGUID(), crid, nil)
}

func notAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	adminError(w, r, http.StatusMethodNotAllowed, "notSupported", "method "+r.Method+" is not supported here; allowed: "+allow)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readAdminBody reads and decodes a JSON body into v; it has answered when it
// returns false.
func readAdminBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, rep := readBody(r, "badRequest")
	if rep != nil {
		adminError(w, r, rep.status, rep.code, rep.msg)
		return false
	}
	if err := decodeJSON(body, v); err != nil {
		adminError(w, r, http.StatusBadRequest, "badRequest", err.Error())
		return false
	}
	return true
}

func (e *Emulator) adminIndex(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		notAllowed(w, r, "GET")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"graph": baseURL(r) + "/v1.0",
		"admin": []string{
			"GET|DELETE /_emulator/users", "GET|PUT|DELETE /_emulator/users/{objectId}",
			"GET|PUT /_emulator/faults", "GET|DELETE /_emulator/stats",
			"GET /_emulator/requests?since=&userId=&limit=", "GET|PUT /_emulator/config",
			"PATCH /_emulator/users/{objectId} (mail, otherMails, managerId)", "GET|DELETE /_emulator/mail?since=",
			"GET|PUT /_emulator/mail/faults",
		},
	})
}

func (e *Emulator) adminUsers(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, e.Users())
	case http.MethodDelete:
		e.DeleteUsers()
		w.WriteHeader(http.StatusNoContent)
	default:
		notAllowed(w, r, "GET, DELETE")
	}
}

func (e *Emulator) adminUser(w http.ResponseWriter, r *http.Request, id string) {
	switch r.Method {
	case http.MethodGet:
		u, ok := e.User(id)
		if !ok {
			adminError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "user "+id+" does not exist")
			return
		}
		writeJSON(w, http.StatusOK, u)
	case http.MethodPut:
		var u User
		if !readAdminBody(w, r, &u) {
			return
		}
		if u.ID == "" {
			u.ID = id
		}
		if !strings.EqualFold(u.ID, id) {
			adminError(w, r, http.StatusBadRequest, "badRequest", "body id "+u.ID+" differs from the path id "+id)
			return
		}
		created, err := e.putUser(u)
		if err != nil {
			adminError(w, r, http.StatusBadRequest, "badRequest", err.Error())
			return
		}
		stored, _ := e.User(id)
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, stored)
	case http.MethodDelete:
		if !e.DeleteUser(id) {
			adminError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "user "+id+" does not exist")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		e.adminPatchUser(w, r, id) // mail.go
	default:
		notAllowed(w, r, "GET, PUT, PATCH, DELETE")
	}
}

func (e *Emulator) adminFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, e.Faults())
	case http.MethodPut:
		var f Faults
		if !readAdminBody(w, r, &f) {
			return
		}
		if err := e.SetFaults(f); err != nil {
			adminError(w, r, http.StatusBadRequest, "badRequest", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, e.Faults())
	default:
		notAllowed(w, r, "GET, PUT")
	}
}

func (e *Emulator) adminStats(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, e.Stats())
	case http.MethodDelete:
		e.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	default:
		notAllowed(w, r, "GET, DELETE")
	}
}

func (e *Emulator) adminRequests(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		notAllowed(w, r, "GET")
		return
	}
	q := r.URL.Query()
	var since int64
	var limit int
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			adminError(w, r, http.StatusBadRequest, "badRequest", "since must be a non-negative sequence number")
			return
		}
		since = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			adminError(w, r, http.StatusBadRequest, "badRequest", "limit must be a non-negative integer")
			return
		}
		limit = n
	}
	userID := strings.ToLower(q.Get("userId"))
	e.mu.Lock()
	out := e.reqlog.entries(since, userID, limit)
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// adminConfig: PUT merges the given fields into the current configuration.
func (e *Emulator) adminConfig(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, e.Config())
	case http.MethodPut:
		c := e.Config()
		if !readAdminBody(w, r, &c) {
			return
		}
		if err := e.SetConfig(c); err != nil {
			adminError(w, r, http.StatusBadRequest, "badRequest", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, e.Config())
	default:
		notAllowed(w, r, "GET, PUT")
	}
}
