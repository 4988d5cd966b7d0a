package dialect

import (
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

// unsupportedEncoding returns a decoder that reports the body unreadable
// when it is compressed: parsing compressed bytes as JSON would only yield
// misleading malformed_json counts.
func unsupportedEncoding(dialect string, resp Response) (Decoder, bool) {
	enc := strings.TrimSpace(resp.ContentEncoding)
	if enc == "" || strings.EqualFold(enc, "identity") {
		return nil, false
	}
	return failedDecoder{fmt.Errorf("%s: content-encoding %s not supported yet: %w", dialect, enc, ReasonUnexpectedShape)}, true
}

// failedDecoder ignores the body and reports err.
type failedDecoder struct{ err error }

func (failedDecoder) Feed([]byte) error    { return nil }
func (d failedDecoder) Finish(bool) Result { return Result{Err: d.err} }
