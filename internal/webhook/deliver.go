package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/retryafter"
)

const (
	userAgent = "tokenmeter-webhook"
	// maxResponseDrain is what is read of a response body, so the connection
	// can be reused without a hostile or broken receiver costing memory or
	// time. Nothing of the body is used.
	maxResponseDrain = 64 << 10
)

// outcome is how one alert's delivery to one target ended.
type outcome uint8

const (
	delivered   outcome = iota
	failed              // given up; counted in Stats.Failed
	interrupted         // ctx ended first; the caller decides (drain, or drop)
)

// attempt is the result of one POST.
type attempt struct {
	status     int           // 0 when no response
	err        error         // transport error, sanitized: never holds the URL
	retryable  bool          // network error, 429, 5xx
	retryAfter time.Duration // from Retry-After on 429/503; -1 when absent
}

// deliver POSTs a to t, up to maxAttempts times. It counts Sent and Failed;
// an interrupted delivery is counted by the caller.
func (s *Sender) deliver(ctx context.Context, t *target, a Alert, maxAttempts int) outcome {
	log := s.log.With("target", t.Name, "host", t.host, "kind", a.Kind, "key", a.Key)
	body, err := encode(t.Format, a)
	if err != nil {
		s.failed.Add(1)
		log.Warn("webhook alert not encodable", "error", err)
		return failed
	}
	delay := min(s.backoff, MaxBackoff)
	for n := 1; ; n++ {
		r := s.post(ctx, t, body)
		if r.err == nil && r.status >= 200 && r.status < 300 {
			s.sent.Add(1)
			log.Debug("webhook delivered", "status", r.status, "attempts", n)
			return delivered
		}
		if ctx.Err() != nil {
			return interrupted
		}
		attrs := []any{"status", r.status, "attempts", n}
		if r.err != nil {
			attrs = append(attrs, "error", r.err.Error())
		}
		if !r.retryable || n >= maxAttempts {
			s.failed.Add(1)
			log.Warn("webhook delivery failed", append(attrs, "retryable", r.retryable)...)
			return failed
		}
		wait := delay
		if r.retryAfter >= 0 {
			wait = r.retryAfter
		}
		log.Debug("webhook delivery retry", append(attrs, "wait", wait)...)
		if err := s.sleep(ctx, wait); err != nil {
			return interrupted
		}
		delay = min(2*delay, MaxBackoff)
	}
}

// post makes one attempt, bounded by s.timeout.
func (s *Sender) post(ctx context.Context, t *target, body []byte) attempt {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		// Validate ran in New, so this is unexpected; the error quotes the URL.
		return attempt{err: errors.New("cannot build request"), retryAfter: -1}
	}
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.client.Do(req)
	if err != nil {
		return attempt{err: sanitize(err, t.URL), retryable: true, retryAfter: -1}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	_ = resp.Body.Close()

	r := attempt{status: resp.StatusCode, retryAfter: -1}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return r
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		r.retryable = true
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.retryAfter = retryafter.Parse(resp.Header.Get("Retry-After"), s.now(), MaxBackoff)
	}
	return r
}

// sanitize strips the URL from a transport error: *url.Error quotes it whole
// (`Post "https://hooks.slack.com/services/T/B/secret": ...`). The string
// replacement covers errors that embed it elsewhere.
func sanitize(err error, rawURL string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if rawURL != "" {
		msg = strings.ReplaceAll(msg, rawURL, redactURL(rawURL))
	}
	if u, perr := url.Parse(rawURL); perr == nil {
		if u.RawQuery != "" {
			msg = strings.ReplaceAll(msg, u.RawQuery, "…")
		}
		if u.Path != "" && u.Path != "/" {
			msg = strings.ReplaceAll(msg, u.Path, "/…")
		}
	}
	return errors.New(msg)
}
