package admin

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/statement"
)

// WithStatements gives /v1/usage/statement's documents (format=html|pdf)
// their settings, read at each request so a reload applies; without it a
// document has no issuer, no tax and no exchange rates.
func (s *Server) WithStatements(settings func() statement.Settings) *Server {
	s.statements = settings
	return s
}

// statementHandler serves GET /v1/usage/statement?month=YYYY-MM&dimension=
// D&value=V[&tz=Z][&format=json|csv|html|pdf]: the statements as JSON (the
// default), their lines as CSV, or as a printable document.
func (s *Server) statementHandler(u Usage, loc *time.Location) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		req, err := statementRequest(v, loc)
		if err != nil {
			badQuery(w, err)
			return
		}
		switch f := cmpOr(v.Get("format"), "json"); f {
		case "json":
			sts, err := u.Statement(r.Context(), req.Month, req.Dimension, req.Value, req.Location)
			if err != nil {
				usageError(w, err)
				return
			}
			out := make([]statementJSON, 0, len(sts))
			for _, st := range sts {
				out = append(out, toStatementJSON(st))
			}
			writeJSON(w, http.StatusOK, map[string]any{"statements": out})
		case "csv":
			sts, err := u.Statement(r.Context(), req.Month, req.Dimension, req.Value, req.Location)
			if err != nil {
				usageError(w, err)
				return
			}
			if err := writeStatementCSV(w, req.Month, sts); err != nil {
				panic(http.ErrAbortHandler) // the status is sent: break the transfer rather than end a short file
			}
		case "html", "pdf":
			s.statementDocument(w, r, u, req, f)
		default:
			badQuery(w, fmt.Errorf("format %q: want json, csv, html or pdf", f))
		}
	})
}

func statementRequest(v url.Values, loc *time.Location) (statement.Request, error) {
	zone, err := zoneOf(v, loc)
	if err != nil {
		return statement.Request{}, err
	}
	month, err := time.ParseInLocation("2006-01", v.Get("month"), zone)
	if err != nil {
		return statement.Request{}, fmt.Errorf("month %q: want YYYY-MM", v.Get("month"))
	}
	if v.Get("dimension") == "" || v.Get("value") == "" {
		return statement.Request{}, errors.New("dimension and value are required, e.g. dimension=project&value=alpha")
	}
	return statement.Request{Month: month, Dimension: v.Get("dimension"), Value: v.Get("value"), Location: zone}, nil
}

func (s *Server) statementDocument(w http.ResponseWriter, r *http.Request, u Usage, req statement.Request, format string) {
	var set statement.Settings
	if s.statements != nil {
		set = s.statements()
	}
	docs, err := statement.Build(r.Context(), u, req, set, time.Now())
	if err != nil {
		usageError(w, err)
		return
	}
	if len(docs) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no usage for %s=%s in %s",
			req.Dimension, req.Value, req.Month.Format("2006-01"))})
		return
	}
	// The file name is the first statement's number: letters, digits and
	// dashes only, never the caller's value.
	name := docs[0].Number + "." + format
	var body bytes.Buffer
	ctype := "text/html; charset=utf-8"
	if format == "html" {
		err = statement.HTML(&body, docs)
	} else {
		ctype = "application/pdf"
		var pdf []byte
		pdf, err = statement.PDF(r.Context(), set.Chromium, docs)
		body.Write(pdf)
	}
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, statement.ErrNoChromium) {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s"`, name))
	w.Write(body.Bytes())
}
