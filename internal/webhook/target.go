package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Format is the shape of the body POSTed to a target.
type Format string

const (
	// FormatJSON is the generic, documented alert object (see package doc).
	// It is also what the zero Format means.
	FormatJSON Format = "json"
	// FormatSlack is {"text": "..."}, which Slack incoming webhooks (and
	// Mattermost, Rocket.Chat, Google Chat) accept.
	FormatSlack Format = "slack"
)

// ErrInvalidTarget is wrapped by every error Target.Validate and ParseFormat
// return, so config can tell a bad webhook from other errors with errors.Is.
var ErrInvalidTarget = errors.New("invalid webhook target")

// ParseFormat reads a format name as written in config. The empty string is
// FormatJSON, so an omitted format gets the generic body. Names are exact
// (lower case): a typo is an error, not a silent default.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatJSON:
		return FormatJSON, nil
	case FormatSlack:
		return FormatSlack, nil
	}
	return "", fmt.Errorf("%w: unknown format %q (want %q or %q)", ErrInvalidTarget, s, FormatJSON, FormatSlack)
}

// Target is one webhook endpoint.
type Target struct {
	// Name identifies the target in logs and errors. Default: scheme://host
	// of URL.
	Name string
	// URL is where alerts are POSTed: absolute http or https. It is treated
	// as a secret (a Slack webhook URL is a credential): only its scheme and
	// host are ever logged.
	URL string
	// Format of the body; the zero value is FormatJSON.
	Format Format
	// Headers are added to every request (e.g. Authorization). Their values
	// are secrets and never logged. Content-Type and User-Agent are always
	// set by the sender and override any given here.
	Headers map[string]string
}

// Validate checks what config can check before the first alert: the URL is
// absolute http(s) with a host, the format is known and the headers can be
// sent. Errors never quote the URL or a header value.
func (t Target) Validate() error {
	if _, err := ParseFormat(string(t.Format)); err != nil {
		return err
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		// url.Parse's error quotes the whole URL, a secret: say less.
		return fmt.Errorf("%w: url does not parse", ErrInvalidTarget)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: url scheme must be http or https", ErrInvalidTarget)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: url must be absolute, with a host", ErrInvalidTarget)
	}
	for name, value := range t.Headers {
		if !validHeaderName(name) {
			return fmt.Errorf("%w: header name %q is not a valid HTTP token", ErrInvalidTarget, name)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return fmt.Errorf("%w: header %q value contains a line break or NUL", ErrInvalidTarget, name)
		}
	}
	return nil
}

// validHeaderName reports whether s is an RFC 9110 §5.6.2 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// redactURL keeps what may be logged of a webhook URL: scheme and host.
// Path, query and userinfo carry the credentials of most webhook services.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "invalid-url"
	}
	return u.Scheme + "://" + u.Host
}
