package admin

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// consoleRoutes serves GET /v1/console/config: what the console's pickers
// offer. The page cannot guess the configured dimensions, and asking a
// report for them would cost a scan.
func (s *Server) consoleRoutes(u Usage, loc *time.Location) {
	s.mux.Handle("GET /v1/console/config", s.auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		dims := append([]string{}, u.Dimensions()...)
		writeJSON(w, http.StatusOK, map[string]any{
			"dimensions": dims,
			// The keys a report groups and filters by besides the dimensions.
			"keys":      []string{"provider", "model"},
			"time_zone": loc.String(),
		})
	})))
}

// statementCSVColumns are the statement lines' CSV columns: one row per
// line, amounts as the exact decimal strings of the JSON.
var statementCSVColumns = []string{"month", "dimension", "value", "currency", "provider", "model",
	"requests", "unpriced", "denied", "failed", "input", "cache_read", "cache_write", "cache_write_1h",
	"output", "reasoning", "cost", "list_cost"}

// writeStatementCSV writes the statements' lines, the spreadsheet twin of
// the document: a line whose requests were all unpriced has an empty cost,
// never 0, as the document says "unknown".
func writeStatementCSV(w http.ResponseWriter, month time.Time, sts []usagedb.Statement) error {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="statement-%s.csv"`, month.Format("2006-01")))
	cw := csv.NewWriter(w)
	if err := cw.Write(statementCSVColumns); err != nil {
		return fmt.Errorf("statement csv: %w", err)
	}
	classes := []usage.Class{usage.Input, usage.CacheRead, usage.CacheWrite, usage.CacheWrite1h, usage.Output, usage.Reasoning}
	for _, st := range sts {
		for _, l := range st.Lines {
			rec := []string{st.Month.Format("2006-01"), st.Dimension, st.Value, string(st.Currency), l.Provider, l.Model,
				itoa(l.Requests), itoa(l.Unpriced), itoa(l.Denied), itoa(l.Failed)}
			for _, c := range classes {
				rec = append(rec, itoa(l.Tokens[c]))
			}
			cost, list := l.Cost.String(), l.ListCost.String()
			if l.Requests > 0 && l.Unpriced == l.Requests {
				cost, list = "", ""
			}
			if err := cw.Write(append(rec, cost, list)); err != nil {
				return fmt.Errorf("statement csv: %w", err)
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("statement csv: %w", err)
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
