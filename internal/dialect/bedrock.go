package dialect

import (
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Amazon Bedrock's runtime API (bedrock-runtime.{region}.amazonaws.com)
// names the model in the path, /model/{modelId}/{operation}, and has four
// operations, each a dialect here: Converse and ConverseStream, one request
// and response shape for every model (bedrock_converse.go), and InvokeModel
// and InvokeModelWithResponseStream, which carry the model vendor's native
// JSON (bedrock_invoke.go). The streams use the AWS event-stream encoding
// (framing.EventStream).
//
// What is shared: the model from the path, the usage classes, and errors.
//
// Normalisation. Bedrock's counts are additive, as Anthropic's are: the
// input count excludes the tokens read from and written to the prompt cache,
// which are reported beside it. The prompt-caching guide says so of
// Converse (https://docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html:
// inputTokens is "only the non-cached input tokens", and total input is
// inputTokens + cacheReadInputTokens + cacheWriteInputTokens), and recorded
// responses agree: totalTokens is the sum of all four counts (Claude Haiku
// 4.5 quoted in tensorzero/tensorzero#5688: inputTokens 18,
// cacheWriteInputTokens 7502, outputTokens 386, totalTokens 7906), which is
// checked. The InvokeModel headers and the streams'
// amazon-bedrock-invocationMetrics (cacheReadInputTokenCount and
// cacheWriteInputTokenCount beside inputTokenCount, BerriAI/litellm#34373)
// use the same split under other names. So each count maps to one class as
// it is; reasoning is billed inside the output count and never reported
// apart. Responses name no model, or the vendor's own name for it: Bedrock
// bills the modelId of the path, which ParseRequest reports, so Result.Model
// stays empty.

const (
	bedrockProvider = "bedrock"
	// awsEventStream is the Content-Type of ConverseStream and
	// InvokeModelWithResponseStream bodies.
	awsEventStream = "application/vnd.amazon.eventstream"
)

// bedrockModel returns the modelId of a Bedrock runtime path,
// /model/{modelId}/{operation}, URL-decoded: a model id
// ("anthropic.claude-3-5-sonnet-20241022-v2:0"), an inference profile
// ("us.anthropic..."), or an ARN. Clients encode it (the ':' and the '/' of
// an ARN); a gateway may have decoded it, so a '/' inside the id is kept
// and the operation is the last segment. "" when the path has no model.
func bedrockModel(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	i := strings.Index(path, "/model/")
	if i < 0 {
		return ""
	}
	id := path[i+len("/model/"):]
	j := strings.LastIndexByte(id, '/')
	if j < 0 {
		return ""
	}
	id = id[:j]
	if s, err := url.PathUnescape(id); err == nil {
		id = s
	}
	return id
}

// isAWSEventStream reports whether a Content-Type names the AWS
// event-stream encoding. Media types are case-insensitive.
func isAWSEventStream(contentType string) bool {
	ct := strings.TrimSpace(contentType)
	return len(ct) >= len(awsEventStream) && strings.EqualFold(ct[:len(awsEventStream)], awsEventStream)
}

// The fields of a Bedrock usage report, by index into bedrockUsage.n.
const (
	buInput = iota
	buCacheRead
	buCacheWrite
	buOutput
	buTotal
	buWrite5m // from Converse's cacheDetails
	buWrite1h
	buFields
)

// The provider's names for the fields, kept in Raw, per report.
var (
	converseRawNames = [buFields]string{"inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens",
		"outputTokens", "totalTokens", "cacheDetails.5m.inputTokens", "cacheDetails.1h.inputTokens"}
	metricsRawNames = [buFields]string{"inputTokenCount", "cacheReadInputTokenCount", "cacheWriteInputTokenCount",
		"outputTokenCount"}
	headerRawNames = [buFields]string{"x-amzn-bedrock-input-token-count", "x-amzn-bedrock-cache-read-input-token-count",
		"x-amzn-bedrock-cache-write-input-token-count", "x-amzn-bedrock-output-token-count"}
)

// bedrockUsage is one usage report as the provider sent it.
type bedrockUsage struct {
	n     [buFields]int64
	has   uint8 // bit i: field i was a number
	names *[buFields]string
}

func (u *bedrockUsage) present(i int) bool { return u.has&(1<<i) != 0 }

// set records raw (a JSON value) as field i when it is a number and clears
// it otherwise: within one object a later key overrides an earlier one.
func (u *bedrockUsage) set(i int, raw string) {
	n, ok := intValue(raw)
	u.setN(i, n, ok)
}

func (u *bedrockUsage) setN(i int, n int64, ok bool) {
	u.n[i] = n
	if ok {
		u.has |= 1 << i
	} else {
		u.has &^= 1 << i
	}
}

// parseConverseUsage reads Converse's TokenUsage object. cacheDetails
// breaks the cache write down by TTL ("Sorted by TTL duration (1h before
// 5m)", API_runtime_TokenUsage); other members are not tokens.
func parseConverseUsage(obj string) bedrockUsage {
	u := bedrockUsage{names: &converseRawNames}
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "inputTokens":
			u.set(buInput, v)
		case "outputTokens":
			u.set(buOutput, v)
		case "totalTokens":
			u.set(buTotal, v)
		case "cacheReadInputTokens":
			u.set(buCacheRead, v)
		case "cacheWriteInputTokens":
			u.set(buCacheWrite, v)
		case "cacheDetails":
			u.parseCacheDetails(v)
		}
	}
	return u
}

// parseCacheDetails reads [{"inputTokens":n,"ttl":"5m"|"1h"}, ...]. A
// repeated array replaces the earlier one whole; a TTL listed twice adds up.
func (u *bedrockUsage) parseCacheDetails(arr string) {
	u.has &^= 1<<buWrite5m | 1<<buWrite1h
	u.n[buWrite5m], u.n[buWrite1h] = 0, 0
	els := newElements(arr)
	for e, ok := els.next(); ok; e, ok = els.next() {
		n, isNum := intValue(lastMember(e, "inputTokens"))
		i := buWrite5m
		switch rawString(lastMember(e, "ttl")) {
		case "5m":
		case "1h":
			i = buWrite1h
		default:
			continue // a TTL priced by no class; the total still counts it
		}
		if isNum {
			u.n[i] += n
			u.has |= 1 << i
		}
	}
}

// parseMetricsUsage reads amazon-bedrock-invocationMetrics, the usage on
// the last chunk of InvokeModelWithResponseStream. The latencies are not
// tokens.
func parseMetricsUsage(obj string) bedrockUsage {
	u := bedrockUsage{names: &metricsRawNames}
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "inputTokenCount":
			u.set(buInput, v)
		case "outputTokenCount":
			u.set(buOutput, v)
		case "cacheReadInputTokenCount":
			u.set(buCacheRead, v)
		case "cacheWriteInputTokenCount":
			u.set(buCacheWrite, v)
		}
	}
	return u
}

// headerUsage reads InvokeModel's usage headers. ok is false when none is
// present; a header that is not a count is reported by bad.
func headerUsage(header func(string) string) (u bedrockUsage, ok bool, bad string) {
	u.names = &headerRawNames
	if header == nil {
		return u, false, ""
	}
	for _, i := range [...]int{buInput, buCacheRead, buCacheWrite, buOutput} {
		v := strings.TrimSpace(header(headerRawNames[i]))
		if v == "" {
			continue
		}
		ok = true
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			bad = headerRawNames[i]
			continue
		}
		u.setN(i, n, true)
	}
	return u, ok, bad
}

// normalise maps the fields to classes. The counts are additive (see the
// top of this file), so each class is one field, except that a cacheDetails
// breakdown splits the cache write by TTL: when it is present it is what
// the TTL prices follow, and it must add up to the total. totalTokens is
// checked against the sum of the four counts.
func (u bedrockUsage) normalise(dialect string) (usage.Usage, error) {
	var out usage.Usage
	for i := range buFields {
		if u.present(i) {
			out.Raw = append(out.Raw, usage.Field{Name: u.names[i], Value: u.n[i]})
		}
	}
	c := func(i int) count { return count{u.n[i], u.present(i)} }
	ok := additive{input: c(buInput), cacheRead: c(buCacheRead), cacheWrite: c(buCacheWrite),
		write5m: c(buWrite5m), write1h: c(buWrite1h), output: c(buOutput)}.classes(&out)
	write := u.n[buCacheWrite]
	if u.present(buTotal) && u.n[buTotal] != u.n[buInput]+u.n[buCacheRead]+write+u.n[buOutput] {
		ok = false
	}
	if !ok {
		return out, fmt.Errorf("%s: usage %s: %w", dialect, u, reason.InconsistentUsage)
	}
	return out, nil
}

// String lists the fields present, for error messages.
func (u bedrockUsage) String() string {
	var b strings.Builder
	for i := range buFields {
		if u.present(i) {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%d", u.names[i], u.n[i])
		}
	}
	return b.String()
}

// hasTokens reports whether the report counts input or output: a usage
// object without either is not the documented shape.
func (u bedrockUsage) hasTokens() bool { return u.present(buInput) || u.present(buOutput) }

// bedrockErrorTypeHeader names the exception of an error response.
const bedrockErrorTypeHeader = "x-amzn-errortype"

// bedrockStatusError describes an error response: a status that is not
// 2xx, whose body is {"message": "..."} and whose x-amzn-errortype header
// names the exception (e.g. "ThrottlingException:http://..."). Status 0
// (unknown) is taken for success. nil when the status is a success.

func bedrockStatusError(dialect string, resp Response) error {
	if resp.Status == 0 || resp.Status/100 == 2 {
		return nil
	}
	typ := ""
	if resp.Header != nil {
		typ, _, _ = strings.Cut(resp.Header(bedrockErrorTypeHeader), ":")
	}
	return fmt.Errorf("%s: HTTP %d %q: %w", dialect, resp.Status, typ, reason.ProviderError)
}

// bedrockRequest parses a request body that is a JSON object. The model
// comes from the path; on a malformed body it is still returned, with the
// error, because pricing needs it more than the body.
func bedrockRequest(dialect string, body []byte, opts RequestOptions, stream bool) (Request, string, error) {
	req := Request{Model: bedrockModel(opts.Path), Stream: stream, IncludeUsage: stream}
	s, err := requestObject(dialect, body)
	return req, s, err
}

// promptText collects the prompt for estimation: each text, with a newline
// between texts so that words do not run together.
type promptText struct{ t TextBuffer }

// add writes raw, a JSON string or an array of content blocks whose "text"
// members are the text (other blocks, images and documents, count zero:
// this feeds an estimate, not a bill).
func (p *promptText) add(raw string) {
	if !isArray(raw) {
		p.string(raw)
		return
	}
	blocks := newElements(raw)
	for b, ok := blocks.next(); ok; b, ok = blocks.next() {
		p.string(lastMember(b, "text"))
	}
}

func (p *promptText) string(raw string) {
	if len(raw) < 2 || raw[0] != '"' {
		return
	}
	if p.t.Total() > 0 {
		p.t.WriteString("\n")
	}
	p.t.WriteJSONString(raw)
}

// messages adds the content of each message of an array.
func (p *promptText) messages(raw string) {
	msgs := newElements(raw)
	for m, ok := msgs.next(); ok; m, ok = msgs.next() {
		p.add(lastMember(m, "content"))
	}
}

// set fills the request's prompt fields. Prompt is a copy: the text is
// unescaped and joined from many places, so it cannot alias the body.
func (p *promptText) set(req *Request) {
	req.PromptBytes = p.t.Total()
	req.Prompt = string(p.t.Bytes())
}
