package dialect_test

import (
	"fmt"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func ExampleOpenAIChat() {
	d, _ := dialect.DefaultRegistry().ForPath("/v1/chat/completions")

	req, newBody, _ := d.ParseRequest([]byte(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}]}`),
		dialect.RequestOptions{InjectStreamUsage: true})
	fmt.Printf("%s stream=%v include_usage=%v\n%s\n", req.Model, req.Stream, req.IncludeUsage, newBody)

	dec := d.NewDecoder(dialect.Response{Status: 200, ContentType: "text/event-stream"}, 1<<20)
	_ = dec.Feed([]byte(`data: {"model":"gpt-4o-2024-08-06","choices":[{"delta":{"content":"Hello"}}],"usage":null}` + "\n\n"))
	_ = dec.Feed([]byte(`data: {"choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":300,` +
		`"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":256}}}` + "\n\ndata: [DONE]\n\n"))
	res := dec.Finish(true)
	fmt.Println(res.Model, res.Err)
	for c := range usage.NumClasses {
		if n := res.Usage.Tokens[c]; n.Reported {
			fmt.Println(c, n.N)
		}
	}
	// Output:
	// gpt-4o stream=true include_usage=true
	// {"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hi"}],"stream_options":{"include_usage":true}}
	// gpt-4o-2024-08-06 <nil>
	// input 176
	// cache_read 1024
	// output 44
	// reasoning 256
}
