package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openidp/idp/idp/admin"
	"github.com/openidp/idp/idp/audit"
	"github.com/openidp/idp/storage"
	"github.com/openidp/idp/web"
)

// The audit, keys and account-type policy pages.

// auditPageSize is how many events one audit page shows.
const auditPageSize = 50

// auditExportMax bounds one export download; narrow the filter (time) for more.
const auditExportMax = 100000

// timeInput is the format of <input type="datetime-local">, read as UTC.
const timeInput = "2006-01-02T15:04"

type auditRow struct {
	ID                                           int64
	Time, Type, Result, User, Client, IP, Reason string
	UserID, ClientID                             string
	Failure                                      bool
}

type auditPage struct {
	base
	Person, Client, Type, Since, Until string
	Types                              []string
	Events                             []auditRow
	Older                              string // link to the next (older) page, "" at the end
	Newer                              bool   // this is not the first page
	Export                             string
	FilterError                        string
	Verified                           bool
	Verify                             audit.VerifyResult
}

// auditFilter reads the audit page's filter from the query.
func (c *Console) auditFilter(q *request) (storage.AuditFilter, error) {
	v := q.r.URL.Query()
	var f storage.AuditFilter
	if who := strings.TrimSpace(v.Get("person")); who != "" {
		u, err := c.cfg.Admin.FindUser(q.ctx(), who)
		if errors.Is(err, storage.ErrNotFound) {
			return f, errors.New("no person has the e-mail address or id " + strconv.Quote(who))
		}
		if err != nil {
			return f, err
		}
		f.UserID = u.ID
	}
	f.ClientID = strings.TrimSpace(v.Get("client"))
	if t := strings.TrimSpace(v.Get("type")); t != "" {
		known, ok := audit.KnownType(t)
		if !ok {
			return f, errors.New("unknown event type " + strconv.Quote(t))
		}
		f.Type = known
	}
	for _, tf := range []struct {
		key string
		dst *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := strings.TrimSpace(v.Get(tf.key)); s != "" {
			t, err := time.ParseInLocation(timeInput, s, time.UTC)
			if err != nil {
				return f, errors.New("write times as 2025-01-31T12:00 (UTC)")
			}
			*tf.dst = t
		}
	}
	if b := v.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id < 1 {
			return f, errors.New("invalid page")
		}
		f.BeforeID = id
	}
	return f, nil
}

func (c *Console) audit(q *request) {
	v := q.r.URL.Query()
	p := auditPage{base: c.base(q, "audit"), Person: v.Get("person"), Client: v.Get("client"), Type: v.Get("type"),
		Since: v.Get("since"), Until: v.Get("until"), Types: audit.EventTypes, Newer: v.Get("before") != ""}
	slices.Sort(p.Types)
	f, err := c.auditFilter(q)
	status := http.StatusOK
	if err != nil {
		p.FilterError, status = err.Error(), http.StatusBadRequest
	} else {
		f.Limit = auditPageSize + 1
		events, err := c.cfg.Admin.ListAudit(q.ctx(), f)
		if err != nil {
			c.fail(q, err)
			return
		}
		slices.Reverse(events) // newest first
		more := len(events) > auditPageSize
		if more {
			events = events[:auditPageSize]
		}
		emails := map[string]string{}
		clientNames := map[string]string{}
		if cs, err := c.cfg.Admin.ListClients(q.ctx()); err == nil {
			for _, cl := range cs {
				clientNames[cl.ID] = cl.Name
			}
		}
		for _, e := range events {
			row := auditRow{ID: e.ID, Time: e.Time.UTC().Format("2006-01-02 15:04:05"), Type: e.Type, Result: e.Result,
				UserID: e.UserID, ClientID: e.ClientID, Client: clientNames[e.ClientID], IP: e.IP, Reason: e.Reason, Failure: e.Result != audit.ResultSuccess}
			if e.UserID != "" {
				if _, ok := emails[e.UserID]; !ok {
					emails[e.UserID] = e.UserID
					if u, err := c.cfg.Admin.FindUser(q.ctx(), e.UserID); err == nil {
						emails[e.UserID] = u.Email
					}
				}
				row.User = emails[e.UserID]
			}
			p.Events = append(p.Events, row)
		}
		keep := url.Values{}
		for _, k := range []string{"person", "client", "type", "since", "until"} {
			if s := v.Get(k); s != "" {
				keep.Set(k, s)
			}
		}
		p.Export = "/admin/audit/export?" + keep.Encode()
		if more {
			keep.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
			p.Older = "/admin/audit?" + keep.Encode()
		}
	}
	if v.Get("verify") == "1" {
		res, err := c.cfg.Admin.VerifyAudit(q.ctx())
		if err != nil {
			c.internal(q.w, q.r, err)
			return
		}
		p.Verified, p.Verify = true, res
	}
	c.render(q, status, web.PageConsoleAudit, p)
}

// auditExport downloads the filtered events as JSON Lines, oldest first.
func (c *Console) auditExport(q *request) {
	f, err := c.auditFilter(q)
	if err != nil {
		c.cfg.Error(q.w, q.r, http.StatusBadRequest, "Not done", err.Error())
		return
	}
	f.BeforeID, f.Limit = 0, auditExportMax
	events, err := c.cfg.Admin.ListAudit(q.ctx(), f)
	if err != nil {
		c.fail(q, err)
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/x-ndjson; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="audit.jsonl"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if err := admin.WriteAuditJSONL(q.w, events); err != nil {
		c.cfg.Logger.WarnContext(q.ctx(), "audit export", "err", err)
	}
}

type keyRow struct {
	ID, Alg, State, Created, Activates, Retired, Expires string
}

type keysPage struct {
	base
	Keys []keyRow
}

func (c *Console) keys(q *request) {
	ks, err := c.cfg.Admin.ListKeys(q.ctx())
	if err != nil {
		c.internal(q.w, q.r, err)
		return
	}
	p := keysPage{base: c.base(q, "keys")}
	for _, k := range ks {
		p.Keys = append(p.Keys, keyRow{ID: k.ID, Alg: string(k.Alg), State: string(k.State), Created: fmtTime(k.CreatedAt),
			Activates: fmtTime(k.ActivatesAt), Retired: fmtTime(k.RetiredAt), Expires: fmtTime(k.ExpiresAt)})
	}
	c.render(q, http.StatusOK, web.PageConsoleKeys, p)
}

func (c *Console) rotateKeys(q *request) {
	if !c.confirmed(q, confirmPage{Section: "keys", Title: "Rotate the signing keys?",
		Text:   "A new key is added for every algorithm. It is published at once and signs after the publish delay; the keys it replaces stay published for the retention period.",
		Button: "Rotate the keys", Cancel: "/admin/keys"}) {
		return
	}
	if _, err := c.cfg.Admin.RotateKeys(q.ctx(), q.actor); err != nil {
		c.fail(q, err)
		return
	}
	done(q, "/admin/keys", "keys")
}

type typePolicyRow struct {
	Type   string
	Policy policyForm
	Text   string
}

type policiesPage struct {
	base
	Types     []typePolicyRow
	New       policyForm
	NewType   string
	FormError string
}

func (c *Console) policies(q *request) {
	c.renderPolicies(q, http.StatusOK, "", nil)
}

func (c *Console) renderPolicies(q *request, status int, formErr string, posted *storage.MFAPolicy) {
	ps, err := c.cfg.Admin.ListTypePolicies(q.ctx())
	if err != nil {
		c.internal(q.w, q.r, err)
		return
	}
	p := policiesPage{base: c.base(q, "policies"), New: policyFormFrom(storage.MFAPolicy{}), FormError: formErr}
	if posted != nil {
		p.New, p.NewType = policyFormFrom(*posted), q.r.PostFormValue("type")
	}
	p.New.Prefix = "new-"
	names := make([]string, 0, len(ps))
	for t := range ps {
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range names {
		row := typePolicyRow{Type: t, Policy: policyFormFrom(ps[t]), Text: describePolicy(ps[t])}
		row.Policy.Prefix = "t-" + t + "-"
		p.Types = append(p.Types, row)
	}
	c.render(q, status, web.PageConsolePolicies, p)
}

func (c *Console) setTypePolicy(q *request) {
	pol, err := postedPolicy(q.r)
	if err == nil {
		_, err = c.cfg.Admin.SetTypePolicy(q.ctx(), q.actor, q.r.PostFormValue("type"), pol)
	}
	var inv *admin.InvalidInputError
	if err != nil && (errors.As(err, &inv) || strings.Contains(err.Error(), "duration")) {
		c.renderPolicies(q, http.StatusBadRequest, err.Error(), &pol)
		return
	}
	if err != nil {
		c.fail(q, err)
		return
	}
	done(q, "/admin/policies", "typeset")
}
