package cloudevents

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/cloudevents/cetest"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var meta = Meta{Source: "tokenmeter", Type: "tokenmeter.request", Subject: "project"}

// sample is a priced, marked-up, converted record with every kind of field
// set.
func sample() *ledger.Record {
	r := &ledger.Record{
		RequestID: "01JDEMO0000000000000000001", ClientRequestID: "client-7",
		Start:    time.Date(2026, 11, 17, 14, 3, 5, 123456789, time.FixedZone("CET", 3600)),
		Duration: 1234567 * time.Microsecond, TTFT: 200 * time.Millisecond,
		Dimensions: attribution.Dimensions{Names: []string{"project", "team", "user"}, Values: []string{"alpha", "search", "ann"}},
		Provider:   "openai", Dialect: "openai_chat", Model: "gpt-4o-mini", ResponseModel: "gpt-4o-mini-2024-07-18",
		PricedModel: "gpt-4o-mini", Status: 200, Stream: true,
		ListCost: money.MustParse("0.000213"), Cost: money.MustParse("0.0002343"), Adjustment: "platform-fee",
		Currency: money.USD, ReportingCost: money.MustParse("0.000199155"), ReportingCurrency: money.Currency("EUR"),
		Priced: true, Outcome: ledger.OK,
	}
	r.Usage.Set(usage.Input, 1000)
	r.Usage.Set(usage.CacheRead, 200)
	r.Usage.Set(usage.Output, 50)
	r.Usage.Set(usage.Reasoning, 30)
	return r
}

// The event of a record, byte for byte (testdata/event.json): the spec's
// attributes, the data with exact decimal strings.
func TestEventGolden(t *testing.T) {
	e, err := NewEvent(meta, sample())
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := "testdata/event.json"
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(got, '\n'), want) {
		t.Errorf("event differs from %s (go test -update to rewrite):\n%s", golden, got)
	}
}

// By the spec's JSON format (json-format.md, 3): the context attributes are
// top-level members, specversion "1.0", time an RFC 3339 string, and data a
// JSON value (not base64) because datacontenttype is application/json. The
// receiver's SDK reads back the same attributes and data.
func TestEventBySpecJSONRules(t *testing.T) {
	e, err := NewEvent(meta, sample())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(e)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"data", "datacontenttype", "id", "source", "specversion", "subject", "time", "type"}
	if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, wantKeys) {
		t.Errorf("members %v, want %v", keys, wantKeys)
	}
	str := func(k string) string {
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil {
			t.Errorf("%s is not a string: %s", k, m[k])
		}
		return s
	}
	for k, want := range map[string]string{"specversion": "1.0", "id": "01JDEMO0000000000000000001", "source": "tokenmeter",
		"type": "tokenmeter.request", "subject": "alpha", "datacontenttype": "application/json"} {
		if got := str(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if at, err := time.Parse(time.RFC3339Nano, str("time")); err != nil || !at.Equal(sample().Start) {
		t.Errorf("time %s (%v), want the record's start %v", m["time"], err, sample().Start)
	}
	if !bytes.HasPrefix(m["data"], []byte("{")) {
		t.Errorf("data is not a JSON object: %s", m["data"])
	}

	events, err := cetest.Decode(ContentTypeBatch, append(append([]byte("["), raw...), ']'))
	if err != nil || len(events) != 1 {
		t.Fatalf("the SDK reads %d events: %v", len(events), err)
	}
	var d Data
	if err := events[0].DataAs(&d); err != nil {
		t.Fatal(err)
	}
	if d.Cost != "0.0002343" || d.ListCost != "0.000213" || d.Currency != "USD" || d.ReportingCost != "0.000199155" ||
		d.Tokens["input"] != 1000 || d.Tokens["cache_read"] != 200 || d.Tokens["output"] != 50 || d.Tokens["reasoning"] != 30 ||
		d.Tokens["total"] != 1280 || d.Dimensions["team"] != "search" || d.Outcome != ledger.OK || !d.Charged {
		t.Errorf("data read back: %+v", d)
	}
}

// Unpriced: no cost at all, never "0"; no subject value: "unknown"; a
// denied record is not charged; no id: not an event.
func TestEventEdges(t *testing.T) {
	r := sample()
	r.Priced, r.PricedModel, r.Cost, r.ListCost = false, "", 0, 0
	r.Reason = reason.UnpricedModel
	r.Dimensions = attribution.Dimensions{Names: []string{"team"}, Values: []string{"x"}}
	e, err := NewEvent(meta, r)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject() != "unknown" {
		t.Errorf("subject %q, want unknown", e.Subject())
	}
	raw := string(e.Data())
	for _, k := range []string{`"cost"`, `"list_cost"`, `"currency"`, `"reporting_cost"`} {
		if strings.Contains(raw, k) {
			t.Errorf("an unpriced record's data has %s: %s", k, raw)
		}
	}
	if !strings.Contains(raw, `"priced":false`) || !strings.Contains(raw, `"reason":"unpriced_model"`) {
		t.Errorf("data %s", raw)
	}

	d := NewData(&ledger.Record{Outcome: ledger.Denied, Budget: "b", Priced: true})
	if d.Charged || d.Cost != "0" || d.Tokens["total"] != 0 || d.Budget != "b" {
		t.Errorf("denied: %+v", d)
	}
	if _, err := NewEvent(meta, &ledger.Record{}); !errors.Is(err, ErrNoID) {
		t.Errorf("no id: %v, want ErrNoID", err)
	}
}

// docs/ledger.md's table of the event's data lists every member Data
// writes, and no other.
func TestDocsDataTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/ledger.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "<!-- cloudevents data -->")
	if !ok {
		t.Fatal("docs/ledger.md has no <!-- cloudevents data --> table")
	}
	section, _, _ = strings.Cut(section, "\n\n")
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	var written []string
	for _, f := range regexp.MustCompile(`json:"([a-z_]+)`).FindAllStringSubmatch(dataFields(t), -1) {
		written = append(written, f[1])
	}
	if !slices.Equal(documented, written) {
		t.Errorf("docs/ledger.md documents %v;\nData writes %v (same order)", documented, written)
	}
}

// dataFields is the source of the Data struct.
func dataFields(t *testing.T) string {
	src, err := os.ReadFile("event.go")
	if err != nil {
		t.Fatal(err)
	}
	_, s, _ := strings.Cut(string(src), "type Data struct {")
	s, _, _ = strings.Cut(s, "\n}\n")
	return s
}
