package apikey

import (
	"net/url"
	"strings"
)

// carrier is one place an API carries the caller's key.
type carrier struct {
	header string // lower-case
	bearer bool   // "Bearer <key>"; AWS's SigV4 form gives its access key id
	query  string // a query parameter instead of a header
}

var (
	authorization = carrier{header: "authorization", bearer: true}
	xAPIKey       = carrier{header: "x-api-key"}
	googAPIKey    = carrier{header: "x-goog-api-key"}
	googQuery     = carrier{query: "key"}
	azureAPIKey   = carrier{header: "api-key"}
)

// carriers lists, per provider (dialect.Dialect.Provider), where its API
// carries the key, in the order its servers read them. A request for a
// provider not listed (or no dialect: a path tokenmeter does not meter)
// is read in the order of any.
var carriers = map[string][]carrier{
	"openai":    {authorization},
	"azure":     {azureAPIKey, authorization},
	"anthropic": {xAPIKey, authorization},
	"google":    {googAPIKey, googQuery, authorization},
	"vertex":    {authorization, googAPIKey, googQuery},
	"bedrock":   {authorization},
	"cohere":    {authorization},
	"ollama":    {authorization},
}

var anyProvider = []carrier{authorization, xAPIKey, googAPIKey, azureAPIKey, googQuery}

// Read returns the key a request for provider carries, or "" when it
// carries none. header looks up a request header; path is the request's
// :path, whose query may hold Gemini's ?key=.
//
// Authorization is read as "Bearer <key>". A request signed with AWS SigV4
// (Bedrock) carries no key, only a signature that changes with every
// request; its stable part is the access key id in Credential=, which is
// what identifies the caller, so that is the key.
func Read(provider string, header func(string) string, path string) string {
	cs, ok := carriers[provider]
	if !ok {
		cs = anyProvider
	}
	for _, c := range cs {
		if v := c.read(header, path); v != "" {
			return v
		}
	}
	return ""
}

func (c carrier) read(header func(string) string, path string) string {
	if c.query != "" {
		_, q, ok := strings.Cut(path, "?")
		if !ok {
			return ""
		}
		vs, err := url.ParseQuery(q)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(vs.Get(c.query))
	}
	v := strings.TrimSpace(header(c.header))
	if !c.bearer || v == "" {
		return v
	}
	scheme, rest, _ := strings.Cut(v, " ")
	switch {
	case strings.EqualFold(scheme, "bearer"):
		return strings.TrimSpace(rest)
	case scheme == "AWS4-HMAC-SHA256":
		return sigV4AccessKey(rest)
	}
	return ""
}

// sigV4AccessKey returns the access key id of a SigV4 Authorization
// header's parameters: "Credential=AKIA.../20250101/us-east-1/bedrock/aws4_request, ...".
func sigV4AccessKey(params string) string {
	for _, p := range strings.Split(params, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "Credential="); ok {
			id, _, _ := strings.Cut(v, "/")
			return id
		}
	}
	return ""
}
