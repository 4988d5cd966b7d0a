package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// Usage is what the /v1/usage endpoints read: the stored ledger.
type Usage interface {
	Dimensions() []string
	Report(ctx context.Context, q usagedb.Query) ([]usagedb.Row, error)
	Statement(ctx context.Context, month time.Time, dim, value string, loc *time.Location) ([]usagedb.Statement, error)
	WriteExport(ctx context.Context, w io.Writer, f usagedb.Format, from, to time.Time) error
}

// WithUsage serves /v1/usage over u; loc aligns days, weeks and months
// unless a query names its own tz.
func (s *Server) WithUsage(u Usage, loc *time.Location) *Server {
	if loc == nil {
		loc = time.UTC
	}
	s.mux.Handle("GET /v1/usage/report", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := reportQuery(r.URL.Query(), loc)
		if err != nil {
			badQuery(w, err)
			return
		}
		rows, err := u.Report(r.Context(), q)
		if err != nil {
			usageError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, reportJSON(q, rows))
	})))
	s.mux.Handle("GET /v1/usage/statement", s.auth(s.statementHandler(u, loc)))
	s.consoleRoutes(u, loc)
	s.mux.Handle("GET /v1/usage/export", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		zone, err := zoneOf(v, loc)
		if err != nil {
			badQuery(w, err)
			return
		}
		from, to, err := span(v, zone)
		if err != nil {
			badQuery(w, err)
			return
		}
		format, err := usagedb.ParseFormat(cmpOr(v.Get("format"), "csv"))
		if err != nil {
			badQuery(w, err)
			return
		}
		// Check the range before the first byte goes out: once streaming
		// starts, the status is sent.
		if err := usagedb.ValidateExportRange(from, to); err != nil {
			badQuery(w, err)
			return
		}
		ctype := "text/csv; charset=utf-8"
		if format != "csv" {
			ctype = "application/x-ndjson"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="tokenmeter-%s-%s.%s"`,
			from.Format("20060102"), to.Format("20060102"), format))
		if err := u.WriteExport(r.Context(), w, format, from, to); err != nil {
			// The status is sent: abort the connection (net/http's documented
			// way, ErrAbortHandler) so the client sees a broken transfer, never
			// a short file that looks complete.
			panic(http.ErrAbortHandler)
		}
	})))
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// reportQuery reads from, to (RFC 3339 instants or YYYY-MM-DD dates in tz),
// group_by (comma-separated), bucket, tz and filter.<key>=<value>.
func reportQuery(v url.Values, loc *time.Location) (usagedb.Query, error) {
	zone, err := zoneOf(v, loc)
	if err != nil {
		return usagedb.Query{}, err
	}
	from, to, err := span(v, zone)
	if err != nil {
		return usagedb.Query{}, err
	}
	q := usagedb.Query{From: from, To: to, Location: zone}
	if g := v.Get("group_by"); g != "" {
		q.GroupBy = strings.Split(g, ",")
	}
	if b := v.Get("bucket"); b != "" {
		if q.Bucket, err = usagedb.ParseBucket(b); err != nil {
			return usagedb.Query{}, err
		}
	}
	for k, vals := range v {
		if f, ok := strings.CutPrefix(k, "filter."); ok {
			if q.Filter == nil {
				q.Filter = map[string]string{}
			}
			q.Filter[f] = vals[0]
		} else if !knownParam[k] {
			return usagedb.Query{}, fmt.Errorf("unknown parameter %q; accepted: from, to, group_by, bucket, tz, filter.<key>", k)
		}
	}
	return q, nil
}

var knownParam = map[string]bool{"from": true, "to": true, "group_by": true, "bucket": true, "tz": true}

func zoneOf(v url.Values, loc *time.Location) (*time.Location, error) {
	tz := v.Get("tz")
	if tz == "" {
		return loc, nil
	}
	z, err := time.LoadLocation(tz)
	if err != nil || tz == "Local" {
		return nil, fmt.Errorf("tz %q: want an IANA time zone name such as Europe/Paris", tz)
	}
	return z, nil
}

func span(v url.Values, zone *time.Location) (from, to time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		s := v.Get(name)
		if s == "" {
			return time.Time{}, fmt.Errorf("%s is required: an RFC 3339 instant or a YYYY-MM-DD date", name)
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, nil
		}
		if t, err := time.ParseInLocation("2006-01-02", s, zone); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 instant or a YYYY-MM-DD date", name, s)
	}
	if from, err = parse("from"); err != nil {
		return
	}
	to, err = parse("to")
	return
}

func badQuery(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": strings.TrimPrefix(err.Error(), "usagedb: bad query: ")})
}

func usageError(w http.ResponseWriter, err error) {
	if errors.Is(err, usagedb.ErrBadQuery) {
		badQuery(w, err)
		return
	}
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

// The JSON shapes. Amounts are exact decimal strings, never numbers.
type (
	rowJSON struct {
		Bucket   *time.Time        `json:"bucket,omitempty"`
		Group    map[string]string `json:"group"`
		Currency string            `json:"currency"`
		Requests int64             `json:"requests"`
		// Charged: the records whose outcome carries a charge; tokens,
		// units and costs sum those only.
		Charged int64 `json:"charged"`
		// Outcomes has every outcome (ledger.Outcomes), zeros included, so
		// that a reader sees the whole vocabulary.
		Outcomes map[string]int64 `json:"outcomes"`
		Unpriced int64            `json:"unpriced"`
		Tokens   map[string]int64 `json:"tokens"`
		Units    map[string]int64 `json:"units,omitempty"`
		Cost     string           `json:"cost"`
		ListCost string           `json:"list_cost"`
	}
	totalJSON struct {
		Currency string `json:"currency"`
		Requests int64  `json:"requests"`
		Cost     string `json:"cost"`
	}
	lineJSON struct {
		Provider string `json:"provider"`
		Model    string `json:"model"`
		// Requests are the served (charged) ones; Unpriced of them had no
		// price; Denied and Failed were never billed.
		Requests int64            `json:"requests"`
		Unpriced int64            `json:"unpriced"`
		Denied   int64            `json:"denied"`
		Failed   int64            `json:"failed"`
		Tokens   map[string]int64 `json:"tokens"`
		Units    map[string]int64 `json:"units,omitempty"`
		Cost     string           `json:"cost"`
		ListCost string           `json:"list_cost"`
	}
	statementJSON struct {
		Month     string     `json:"month"`
		Dimension string     `json:"dimension"`
		Value     string     `json:"value"`
		Currency  string     `json:"currency"`
		Lines     []lineJSON `json:"lines"`
		Requests  int64      `json:"requests"`
		Unpriced  int64      `json:"unpriced"`
		Denied    int64      `json:"denied"`
		Failed    int64      `json:"failed"`
		Total     string     `json:"total"`
		ListTotal string     `json:"list_total"`
	}
)

func tokensJSON(t [usage.NumClasses]int64) map[string]int64 {
	m := map[string]int64{}
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		if t[c] != 0 {
			m[c.String()] = t[c]
		}
	}
	return m
}

func outcomesJSON(r *usagedb.Row) map[string]int64 {
	m := make(map[string]int64, len(ledger.Outcomes))
	for _, o := range ledger.Outcomes {
		m[string(o)] = r.Outcome(o)
	}
	return m
}

func unitsJSON(t [usage.NumUnits]int64) map[string]int64 {
	m := map[string]int64{}
	for u := usage.Unit(0); u < usage.NumUnits; u++ {
		if t[u] != 0 {
			m[u.String()] = t[u]
		}
	}
	return m
}

func reportJSON(q usagedb.Query, rows []usagedb.Row) map[string]any {
	out := make([]rowJSON, 0, len(rows))
	totals := map[money.Currency]*struct {
		requests int64
		cost     money.Sum
	}{}
	var order []money.Currency
	for _, r := range rows {
		rj := rowJSON{Group: map[string]string{}, Currency: string(r.Currency), Requests: r.Requests, Charged: r.Charged,
			Outcomes: outcomesJSON(&r), Unpriced: r.Unpriced,
			Tokens: tokensJSON(r.Tokens), Units: unitsJSON(r.Units), Cost: r.Cost.String(), ListCost: r.ListCost.String()}
		if q.Bucket != usagedb.None {
			b := r.Bucket
			rj.Bucket = &b
		}
		for i, g := range q.GroupBy {
			rj.Group[g] = r.Group[i]
		}
		out = append(out, rj)
		t := totals[r.Currency]
		if t == nil {
			t = &struct {
				requests int64
				cost     money.Sum
			}{}
			totals[r.Currency] = t
			order = append(order, r.Currency)
		}
		t.requests += r.Requests
		t.cost.AddEach(1, r.Cost)
	}
	tj := make([]totalJSON, 0, len(order))
	for _, c := range order {
		cost := "overflow" // beyond 9.2 billion units of a currency: say so rather than wrap
		if a, err := totals[c].cost.Amount(); err == nil {
			cost = a.String()
		}
		tj = append(tj, totalJSON{Currency: string(c), Requests: totals[c].requests, Cost: cost})
	}
	groupBy := q.GroupBy
	if groupBy == nil {
		groupBy = []string{}
	}
	return map[string]any{"from": q.From, "to": q.To, "bucket": q.Bucket.String(), "group_by": groupBy,
		"time_zone": q.Location.String(), "rows": out, "totals": tj}
}

func toStatementJSON(st usagedb.Statement) statementJSON {
	sj := statementJSON{Month: st.Month.Format("2006-01"), Dimension: st.Dimension, Value: st.Value, Currency: string(st.Currency),
		Requests: st.Requests, Unpriced: st.Unpriced, Denied: st.Denied, Failed: st.Failed,
		Total: st.Total.String(), ListTotal: st.ListTotal.String(), Lines: []lineJSON{}}
	for _, l := range st.Lines {
		sj.Lines = append(sj.Lines, lineJSON{Provider: l.Provider, Model: l.Model, Requests: l.Requests,
			Unpriced: l.Unpriced, Denied: l.Denied, Failed: l.Failed,
			Tokens: tokensJSON(l.Tokens), Units: unitsJSON(l.Units), Cost: l.Cost.String(), ListCost: l.ListCost.String()})
	}
	return sj
}
