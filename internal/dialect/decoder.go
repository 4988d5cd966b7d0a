package dialect

import (
	"github.com/tidwall/gjson"
	"github.com/tokenmeter/tokenmeter/internal/reason"

	"fmt"

	"strings"
)

// defaultMaxBuffer caps a decoder's buffer when NewDecoder is given no
// positive cap.
const defaultMaxBuffer = 4 << 20

// isEventStream reports whether a Content-Type names server-sent events.
// Media types are case-insensitive (RFC 9110, section 8.3.1).
func isEventStream(contentType string) bool {
	const sse = "text/event-stream"
	ct := strings.TrimSpace(contentType)
	return len(ct) >= len(sse) && strings.EqualFold(ct[:len(sse)], sse)
}

// failedDecoder ignores the body and reports err: for a body no decoder
// can read, such as one with an unknown Content-Encoding.
type failedDecoder struct{ err error }

func (failedDecoder) Feed([]byte) error    { return nil }
func (d failedDecoder) Finish(bool) Result { return Result{Err: d.err} }

// jsonBody buffers a whole (non-streamed) JSON response up to max bytes; the
// JSON decoders of every dialect embed it.
type jsonBody struct {
	dialect  string
	buf      []byte
	max      int
	tooLarge bool
}

func (d *jsonBody) Feed(chunk []byte) error {
	if d.tooLarge {
		return nil
	}
	if len(d.buf)+len(chunk) > d.max {
		d.tooLarge, d.buf = true, nil
		return d.tooLargeErr()
	}
	d.buf = append(d.buf, chunk...)
	return nil
}

func (d *jsonBody) tooLargeErr() error {
	return fmt.Errorf("%s: response body over %d bytes: %w", d.dialect, d.max, reason.TooLarge)
}

// object returns the body when it is one complete JSON object, else the
// reason it is not, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape.
func (d *jsonBody) object(complete bool) (string, error) {
	if d.tooLarge {
		return "", d.tooLargeErr()
	}
	s := bstr(d.buf)
	if !gjson.Valid(s) {
		if !complete {
			return "", fmt.Errorf("%s: response body cut after %d bytes: %w", d.dialect, len(s), reason.Truncated)
		}
		return "", fmt.Errorf("%s: response body: %w", d.dialect, reason.MalformedJSON)
	}
	if i := skipWS(s, 0); i >= len(s) || s[i] != '{' {
		return "", fmt.Errorf("%s: response body is not a JSON object: %w", d.dialect, reason.UnexpectedShape)
	}
	return s, nil
}

// requestObject returns body as a string when it is one JSON object, else the
// reason it is not (malformed_json or unexpected_shape).
func requestObject(dialect string, body []byte) (string, error) {
	s := bstr(body)
	if !gjson.Valid(s) {
		return "", fmt.Errorf("%s: request body: %w", dialect, reason.MalformedJSON)
	}
	if i := skipWS(s, 0); i >= len(s) || s[i] != '{' {
		return "", fmt.Errorf("%s: request body is not a JSON object: %w", dialect, reason.UnexpectedShape)
	}
	return s, nil
}
