package dialect

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
)

const (
	// decodeBufSize is the most plaintext handed to the inner decoder at
	// once: decompression never holds more than this beside the
	// decompressor's own window, however much the body expands.
	decodeBufSize = 32 << 10
	// maxDecodedPerBuffer and maxDecoded cap the plaintext of one body, so
	// a decompression bomb costs bounded CPU. The inner decoder's maxBuffer
	// already bounds memory; this bounds work.
	maxDecodedPerBuffer = 64
	maxDecoded          = 1 << 30
	// maxEmptyReads stops a decompressor that returns neither bytes nor an
	// error, as bufio does, rather than spinning.
	maxEmptyReads = 100
)

// codec is a supported Content-Encoding; its String is the canonical name.
type codec uint8

const (
	identity codec = iota
	codecGzip
	codecDeflate
	codecBrotli
)

func (c codec) String() string {
	return [...]string{"identity", "gzip", "deflate", "br"}[c]
}

// WithEncoding wraps inner so that it is fed the decoded bytes of a body sent
// with the given Content-Encoding: "", "identity", "gzip", "x-gzip",
// "deflate" or "br", case-insensitive. A list such as "gzip, identity" is
// accepted when all but one of its codings are identity. For no coding it
// returns inner itself; for one it does not know, a decoder whose Finish
// reports reason.UnsupportedEncoding, because parsing compressed bytes would
// only yield misleading malformed_json counts.
//
// maxBuffer is the inner decoder's cap (defaultMaxBuffer when not
// positive); the plaintext of one body is capped at 64 times that, or
// 1 GiB, and past the cap inner is fed no more and Finish reports
// reason.TooLarge unless inner already has usage.
//
// The returned decoder runs the decompressor on its own goroutine from the
// first non-empty Feed until Finish; like every Decoder it is used by one
// goroutine at a time. inner must not keep a chunk after its Feed returns
// (framing.SSE and the decoders here copy what they keep): the plaintext
// buffer is reused.
func WithEncoding(encoding string, inner Decoder, maxBuffer int) Decoder {
	c, ok := parseEncoding(encoding)
	switch {
	case !ok:
		return failedDecoder{fmt.Errorf("content-encoding %q not supported: %w",
			strings.TrimSpace(encoding), reason.UnsupportedEncoding)}
	case c == identity:
		return inner
	}
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	return &encodedDecoder{p: &pipe{
		codec:  c,
		inner:  inner,
		limit:  min(int64(maxBuffer)*maxDecodedPerBuffer, maxDecoded),
		in:     make(chan []byte),
		taken:  make(chan struct{}),
		exited: make(chan struct{}),
	}}
}

// parseEncoding reads a Content-Encoding value: a list of codings in the
// order they were applied (RFC 9110, section 8.4), with empty elements
// allowed (section 5.6.1). It reports false for an unknown coding or for
// more than one that is not identity.
func parseEncoding(header string) (codec, bool) {
	found := identity
	for name := range strings.SplitSeq(header, ",") {
		name = strings.TrimSpace(name)
		var c codec
		switch {
		case name == "" || strings.EqualFold(name, "identity"):
			continue
		case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
			c = codecGzip
		case strings.EqualFold(name, "deflate"):
			c = codecDeflate
		case strings.EqualFold(name, "br"):
			c = codecBrotli
		default:
			return identity, false
		}
		if found != identity {
			return identity, false
		}
		found = c
	}
	return found, true
}

// encodedDecoder is what the caller holds. The decompressing goroutine
// holds only the pipe, never this, so that a decoder dropped without Finish
// becomes unreachable and its cleanup can end the goroutine.
type encodedDecoder struct {
	p        *pipe
	started  bool
	finished bool
	cleanup  runtime.Cleanup
	res      Result
}

// Feed hands chunk to the decompressing goroutine and waits until it has
// decompressed all of it and fed the plaintext to inner, so that results
// do not depend on scheduling and inner is never used by two goroutines at
// once. It returns the first error inner's Feed returned meanwhile, or the
// plaintext cap's. Decompression errors wait for Finish, which weighs them
// against the usage inner found.
func (d *encodedDecoder) Feed(chunk []byte) error {
	if d.finished || len(chunk) == 0 {
		return nil
	}
	if !d.started {
		d.start()
	}
	p := d.p
	select {
	case p.in <- chunk:
	case <-p.exited:
		// The compressed stream ended, failed or hit the cap: what follows
		// it is not part of the body's plaintext.
		return nil
	}
	select {
	case <-p.taken:
	case <-p.exited:
	}
	err := p.feedErr
	p.feedErr = nil
	// Until here d must stay reachable: its cleanup closes p.in, and a
	// send on a closed channel panics.
	runtime.KeepAlive(d)
	return err
}

// start runs the decompressor on the first bytes rather than at
// construction, so a body that never comes costs no goroutine.
func (d *encodedDecoder) start() {
	d.started = true
	go d.p.run()
	// Callers should always Finish, but a decoder dropped without it must
	// not park its goroutine forever: ending the input ends it.
	d.cleanup = runtime.AddCleanup(d, func(in chan []byte) { close(in) }, d.p.in)
}

// Finish ends the compressed input, waits for the goroutine to decompress
// what remains and exit, then finishes inner. The body's plaintext is
// complete only when the compressed stream ended cleanly, so inner is told
// complete only then. A second Finish returns the first one's Result.
func (d *encodedDecoder) Finish(complete bool) Result {
	if d.finished {
		return d.res
	}
	d.finished = true
	if d.started {
		d.cleanup.Stop()
		close(d.p.in)
		<-d.p.exited
	}
	d.res = d.p.result(complete)
	return d.res
}

// pipe is the state shared by Feed and the decompressing goroutine. The
// channels order every access: the goroutine writes the fields only while
// a Feed or Finish waits on taken or exited, or once the decoder was
// dropped and nobody reads them.
type pipe struct {
	codec codec
	inner Decoder
	limit int64 // most plaintext bytes fed to inner

	in     chan []byte   // compressed chunks; closed at the end of the body
	taken  chan struct{} // the goroutine has used up the chunk it was handed
	exited chan struct{} // closed as the goroutine's last act

	// Goroutine side.
	cur     []byte // the unread rest of the current chunk
	holding bool   // a Feed waits for cur to be used up
	written int64  // plaintext bytes fed to inner

	feedErr error // first error during the current Feed
	err     error // why decompression stopped before a clean end
}

// decodeBufs recycles the plaintext buffers: a stream's buffer is free
// once its goroutine ends.
var decodeBufs = sync.Pool{New: func() any { b := make([]byte, decodeBufSize); return &b }}

// errOverLimit stops the pump when the plaintext cap is reached.
var errOverLimit = errors.New("plaintext over the limit")

// run is the goroutine: it pulls plaintext from the decompressor, which
// pulls compressed bytes from the pipe, and feeds inner until the stream
// ends, fails, or reaches the cap.
func (p *pipe) run() {
	defer close(p.exited)
	buf := decodeBufs.Get().(*[]byte)
	defer decodeBufs.Put(buf)
	err := p.decompress(*buf)
	switch {
	case err == io.EOF:
	case err == errOverLimit:
		p.err = p.overLimitErr()
	case errors.Is(err, io.ErrUnexpectedEOF):
		p.err = fmt.Errorf("content-encoding %s: compressed body cut before its end: %w", p.codec, reason.Truncated)
	default:
		p.err = fmt.Errorf("content-encoding %s: corrupt %s data (%v): %w", p.codec, p.codec, err, reason.UnexpectedShape)
	}
}

// decompress runs the decompressor. A panic in it (a bug in a codec on
// hostile input) must not take the whole server down from this goroutine,
// where no gRPC handler would catch it: it becomes a corrupt-data error.
func (p *pipe) decompress(buf []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decompressor panicked: %v", r)
		}
	}()
	zr, err := p.open()
	if err != nil {
		return err
	}
	return p.pump(zr, buf)
}

// open makes the decompressor; it may block reading a header.
func (p *pipe) open() (io.Reader, error) {
	switch p.codec {
	case codecGzip:
		zr, err := gzip.NewReader(p)
		if err != nil {
			return nil, err
		}
		return zr, nil
	case codecBrotli:
		return brotli.NewReader(p), nil
	}
	// "deflate" means zlib-wrapped DEFLATE (RFC 9110, section 8.4.1.2), but
	// some servers send raw DEFLATE; browsers and curl tell them apart by
	// the zlib header, and so do we. bufio lets us peek; 16 is its minimum.
	br := bufio.NewReaderSize(p, 16)
	if h, _ := br.Peek(2); len(h) == 2 && isZlibHeader(h[0], h[1]) {
		zr, err := zlib.NewReader(br)
		if err != nil {
			return nil, err
		}
		return zr, nil
	}
	return flate.NewReader(br), nil
}

// isZlibHeader checks a zlib CMF/FLG pair (RFC 1950, section 2.2): method
// 8 (deflate) and a header checksum that makes the pair a multiple of 31.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && (uint(cmf)<<8|uint(flg))%31 == 0
}

// pump copies plaintext from zr to inner in pieces of at most len(buf).
func (p *pipe) pump(zr io.Reader, buf []byte) error {
	for empty := 0; empty < maxEmptyReads; {
		n, err := zr.Read(buf)
		if n > 0 {
			empty = 0
			if !p.emit(buf[:n]) {
				return errOverLimit
			}
		} else {
			empty++
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// emit feeds inner up to the cap and reports whether there is room left.
func (p *pipe) emit(b []byte) bool {
	over := int64(len(b)) > p.limit-p.written
	if over {
		b = b[:p.limit-p.written]
	}
	if len(b) > 0 {
		if err := p.inner.Feed(b); err != nil && p.feedErr == nil {
			p.feedErr = err
		}
		p.written += int64(len(b))
	}
	if over && p.feedErr == nil {
		p.feedErr = p.overLimitErr()
	}
	return !over
}

func (p *pipe) overLimitErr() error {
	return fmt.Errorf("content-encoding %s: body decompresses to over %d bytes: %w", p.codec, p.limit, reason.TooLarge)
}

// result finishes inner. A decompression failure explains missing usage,
// so it replaces inner's reason then; but usage inner did read is the
// provider's own count and stands, and a provider error explains missing
// usage better than the cut it usually causes (as in chatSSE.Finish).
func (p *pipe) result(complete bool) Result {
	res := p.inner.Finish(complete && p.err == nil)
	if p.err != nil && !res.Usage.Reported() && reason.Of(res.Err) != reason.ProviderError {
		res.Err = p.err
	}
	return res
}

// fill makes cur non-empty. Being asked for more input means the
// decompressor has used up the chunk and returned, through pump to inner,
// all it will return before more input comes, so this is when the waiting
// Feed is released. (DEFLATE may hold decoded bytes in its window until a
// flush point; servers that stream flush after each event, and the end of
// input flushes the rest.)
//
// A closed input is the end of the body: always io.EOF, whether or not the
// body was complete. The decompressor turns it into io.ErrUnexpectedEOF
// when its stream is not over; returning that ourselves for an incomplete
// body would make gzip, which looks for a further member after each one,
// call a wholly received stream cut.
func (p *pipe) fill() error {
	for len(p.cur) == 0 {
		if p.holding {
			p.holding, p.cur = false, nil
			p.taken <- struct{}{}
		}
		chunk, ok := <-p.in
		if !ok {
			return io.EOF
		}
		p.cur, p.holding = chunk, true
	}
	return nil
}

// Read and ReadByte make the pipe a flate.Reader, so gzip and flate read it
// directly instead of through a bufio.Reader of their own.
func (p *pipe) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if err := p.fill(); err != nil {
		return 0, err
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

func (p *pipe) ReadByte() (byte, error) {
	if err := p.fill(); err != nil {
		return 0, err
	}
	c := p.cur[0]
	p.cur = p.cur[1:]
	return c, nil
}
