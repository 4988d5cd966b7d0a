package dialect

import (
	"bytes"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"
)

// This file reads the form fields of a multipart/form-data request body
// (RFC 7578, framed as in RFC 2046, section 5.1.1) without the request's
// Content-Type: a dialect only has the body, so the boundary is read from
// its first line. The body may be a 25 MB audio upload: parts are views
// into it, file contents are skipped by a vectorised search for the next
// delimiter, and nothing is copied except a field name that needs
// unescaping.
//
// Clients put no preamble before the first delimiter (Go, Python's httpx
// and requests, curl, browsers, Node's form-data), so the body must begin
// with it. Line ends must be CRLF, as the RFCs require.

const (
	// formMaxBoundary caps the boundary. RFC 2046 allows 70 characters;
	// servers accept longer ones, so metering does too, within reason.
	formMaxBoundary = 256
	// formMaxHeaders caps one part's header block, so a body that is not
	// multipart is given up on without scanning all of it.
	formMaxHeaders = 16 << 10
)

// formPart is one part of a form. Its fields alias the body.
type formPart struct {
	name  string // the field name from Content-Disposition; "" when none
	file  bool   // it has a filename: an upload, whose value nobody reads
	value []byte
}

// formReader iterates the parts of a multipart/form-data body.
type formReader struct {
	body  []byte
	delim []byte // "--" + boundary: a view of the body's first line
	pos   int    // where the next part's headers begin
	done  bool
	err   error
}

// newFormReader reads the boundary from the body's first line,
// "--boundary", optionally followed by transport padding (spaces, tabs).
func newFormReader(body []byte) (formReader, error) {
	r := formReader{body: body}
	window := body[:min(len(body), 2+formMaxBoundary+64)]
	eol := bytes.Index(window, crlf)
	if eol < 0 || !bytes.HasPrefix(window, dashes) {
		return r, formErr("no boundary line at the start of the body")
	}
	boundary := bytes.TrimRight(window[2:eol], " \t")
	if len(boundary) == 0 || len(boundary) > formMaxBoundary {
		return r, formErr(fmt.Sprintf("boundary of %d bytes", len(boundary)))
	}
	r.delim = body[:2+len(boundary)]
	r.pos = eol + 2
	return r, nil
}

var (
	crlf               = []byte("\r\n")
	crlf2              = []byte("\r\n\r\n")
	dashes             = []byte("--")
	contentDisposition = []byte("content-disposition")
	nameParam          = []byte("name")
	filenameParam      = []byte("filename")
	filenameExtParam   = []byte("filename*")
)

func formErr(what string) error {
	return fmt.Errorf("multipart: %s: %w", what, reason.UnexpectedShape)
}

// Err is why iteration stopped early, or nil when the body ended with its
// close delimiter.
func (r *formReader) Err() error { return r.err }

// next returns the next part. It reports false at the close delimiter or
// at the first framing error, which Err then returns.
func (r *formReader) next() (formPart, bool) {
	if r.done || r.err != nil {
		return formPart{}, false
	}
	headers, start, ok := r.headers()
	if !ok {
		return formPart{}, false
	}
	end, after, final, ok := r.findDelimiter(start)
	if !ok {
		r.err = formErr("a part has no closing delimiter")
		return formPart{}, false
	}
	r.pos, r.done = after, final
	p := formPart{value: r.body[start:end]}
	p.name, p.file = disposition(headers)
	return p, true
}

// headers returns the header block of the part at r.pos and where its
// content starts. A part may have no headers at all: its content then
// follows the delimiter line's CRLF.
func (r *formReader) headers() (headers []byte, start int, ok bool) {
	rest := r.body[r.pos:]
	if bytes.HasPrefix(rest, crlf) {
		return nil, r.pos + 2, true
	}
	window := rest[:min(len(rest), formMaxHeaders)]
	i := bytes.Index(window, crlf2)
	if i < 0 {
		r.err = formErr("a part's headers do not end")
		return nil, 0, false
	}
	return rest[:i], r.pos + i + 4, true
}

// findDelimiter finds the first delimiter at or after from: CRLF, "--",
// the boundary, then either "--" (the close delimiter: what follows is
// epilogue) or optional padding and CRLF. A boundary followed by anything
// else is content, as Go's mime/multipart and python-multipart read it.
// It returns where the content before it ends, where the next part's
// headers begin, and whether it was the close delimiter.
func (r *formReader) findDelimiter(from int) (end, after int, final, ok bool) {
	b := r.body
	for i := from; i < len(b); {
		j := bytes.Index(b[i:], r.delim)
		if j < 0 {
			return 0, 0, false, false
		}
		at := i + j
		i = at + 1
		if at-2 < from || b[at-2] != '\r' || b[at-1] != '\n' {
			continue
		}
		tail := b[at+len(r.delim):]
		if bytes.HasPrefix(tail, dashes) {
			return at - 2, len(b), true, true
		}
		pad := len(tail) - len(bytes.TrimLeft(tail, " \t"))
		if bytes.HasPrefix(tail[pad:], crlf) {
			return at - 2, at + len(r.delim) + pad + 2, false, true
		}
	}
	return 0, 0, false, false
}

// disposition reads the name and whether there is a filename from the
// first Content-Disposition header in a part's header block.
func disposition(headers []byte) (name string, file bool) {
	for len(headers) > 0 {
		line := headers
		if i := bytes.Index(headers, crlf); i >= 0 {
			line, headers = headers[:i], headers[i+2:]
		} else {
			headers = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), contentDisposition) {
			return dispositionParams(v)
		}
	}
	return "", false
}

// dispositionParams reads `form-data; name="x"; filename="y"`: parameters
// after the first ';', each a token or a quoted string, whose backslash
// escapes are undone as Go's mime/multipart writer makes them and
// python-multipart reads them. filename* (RFC 5987) marks a file too.
func dispositionParams(v []byte) (name string, file bool) {
	i := bytes.IndexByte(v, ';')
	if i < 0 {
		return "", false
	}
	for i < len(v) {
		i = skipFormSpace(v, i)
		if i < len(v) && v[i] == ';' {
			i = skipFormSpace(v, i+1)
		}
		eq := i
		for eq < len(v) && v[eq] != '=' && v[eq] != ';' {
			eq++
		}
		key := bytes.TrimSpace(v[i:eq])
		if eq >= len(v) || v[eq] == ';' {
			i = eq
			continue
		}
		val, next, ok := paramValue(v, skipFormSpace(v, eq+1))
		if !ok {
			return name, file
		}
		switch {
		case bytes.EqualFold(key, nameParam):
			name = val
		case bytes.EqualFold(key, filenameParam), bytes.EqualFold(key, filenameExtParam):
			file = true
		}
		i = next
	}
	return name, file
}

func skipFormSpace(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// paramValue reads a token or quoted string at v[i] and returns it, as a
// view of v unless it holds escapes, and the index past it.
func paramValue(v []byte, i int) (string, int, bool) {
	if i >= len(v) || v[i] != '"' {
		j := i
		for j < len(v) && v[j] != ';' && v[j] != ' ' && v[j] != '\t' {
			j++
		}
		return bstr(v[i:j]), j, true
	}
	escaped := false
	for j := i + 1; j < len(v); j++ {
		switch v[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			s := v[i+1 : j]
			if !escaped {
				return bstr(s), j + 1, true
			}
			return unescapeQuoted(s), j + 1, true
		}
	}
	return "", len(v), false
}

// unescapeQuoted undoes quoted-pair escapes (RFC 9110, section 5.6.4).
func unescapeQuoted(s []byte) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		out = append(out, s[i])
	}
	return string(out)
}

// formFields reads the named fields of a form, calling set for each one it
// meets. Where a field repeats the last one counts, as the multi-dict of
// most server frameworks returns it; file parts are never fields. The
// error is the framing problem that stopped the scan, if any; set has then
// been called for the fields before it.
func formFields(body []byte, set func(name string, value []byte)) error {
	r, err := newFormReader(body)
	if err != nil {
		return err
	}
	for p, ok := r.next(); ok; p, ok = r.next() {
		if !p.file {
			set(p.name, p.value)
		}
	}
	return r.Err()
}

// formBool reads a boolean form field as the OpenAI SDKs send one ("true"
// or "false"), leniently, as a server's form decoder would.
func formBool(v []byte) bool {
	s := bytes.TrimSpace(v)
	return strings.EqualFold(string(s), "true") || string(s) == "1"
}
