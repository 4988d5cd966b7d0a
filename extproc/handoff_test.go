package extproc

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/reason"
)

// A handoff reads back as written, every field, and what a reader cannot
// trust is refused with the reason.
func TestHandoffRoundTrip(t *testing.T) {
	for _, h := range []handoff{
		{ID: "a-1", Start: time.Unix(0, 1764590400123456789), Provider: "openai", Dialect: "openai_chat", Route: -1, Hold: "x",
			Dimensions: attribution.Dimensions{}},
		{ID: "b-2", ClientRequestID: "req&=?", Start: time.Unix(0, 1), Provider: "deepseek", Dialect: "openai_chat", Route: 3,
			Hold: "v1|lease|…", Dimensions: attribution.Dimensions{Names: []string{"project", "team"}, Values: []string{"a,b", "c=d&e"}},
			Body: dialect.Request{Model: "gpt-4o", Stream: true, IncludeUsage: true, ImageSize: "1024x1024", ImageQuality: "hd",
				ServiceTier: "flex", MaxTokens: 100, PromptBytes: 22, InputCharacters: 7},
			Reason: reason.MalformedJSON, Fallback: true},
	} {
		got, err := decodeHandoff(h.encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.Dimensions.Names == nil {
			got.Dimensions.Names = []string{}
		}
		if h.Dimensions.Names == nil {
			h.Dimensions.Names = []string{}
		}
		if !got.Start.Equal(h.Start) {
			t.Fatalf("start %v, want %v", got.Start, h.Start)
		}
		got.Start = h.Start
		if !reflect.DeepEqual(got, h) {
			t.Fatalf("read back\n%+v\nwant\n%+v", got, h)
		}
	}
	for text, want := range map[string]string{
		"v=2&id=x":                      `version "2"`,
		"v=1&start=-5":                  `start "-5"`,
		"v=1&max_tokens=ten":            `max_tokens "ten"`,
		"v=1&dims=project,team&val=one": "2 dimension names, 1 values",
		"v=1&%zz":                       "invalid URL escape",
	} {
		if _, err := decodeHandoff(text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("decodeHandoff(%q) = %v, want an error with %q", text, err, want)
		}
	}
}
