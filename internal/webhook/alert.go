package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Alert kinds. Kind is a plain string so new kinds need no change here; the
// Slack text has a phrase for each of these and falls back to the kind.
const (
	KindBudgetThreshold  = "budget_threshold"
	KindProjectedOverrun = "projected_overrun"
	KindAnomaly          = "anomaly"
)

// Alert is one notification. Amounts are exact decimal strings
// (money.Amount.String() or a count): no float on a money path.
type Alert struct {
	Kind string
	// Key deduplicates: an alert whose Key was sent before (and has not
	// expired, see Sender) is not sent again. Empty means never deduplicated.
	Key        string
	Budget     string
	CounterKey string // the budget's counter key, e.g. "project=demo"
	Threshold  int    // percent of the limit, for KindBudgetThreshold; 0 = none
	Spent      string
	Limit      string
	Unit       string // "money", "tokens" or "requests"
	Currency   string // ISO 4217, when Unit is "money"
	// WindowStart and WindowEnd bound the budget window. WindowEnd also ends
	// the Key's deduplication (see Sender.Send).
	WindowStart time.Time
	WindowEnd   time.Time
	At          time.Time // when it happened; Send fills a zero At with now
	Message     string    // one human sentence
}

// jsonVersion is bumped only for an incompatible change to jsonBody; adding a
// field is compatible.
const jsonVersion = 1

// jsonBody is the generic body: field names and order are a documented
// contract (package doc, testdata/alert.json). Every field is always present
// so receivers need no "missing vs empty" logic; absent times and threshold
// are null.
type jsonBody struct {
	Version     int        `json:"version"`
	Kind        string     `json:"kind"`
	Key         string     `json:"key"`
	Budget      string     `json:"budget"`
	CounterKey  string     `json:"counter_key"`
	Threshold   *int       `json:"threshold_percent"`
	Spent       string     `json:"spent"`
	Limit       string     `json:"limit"`
	Unit        string     `json:"unit"`
	Currency    string     `json:"currency"`
	WindowStart *time.Time `json:"window_start"`
	WindowEnd   *time.Time `json:"window_end"`
	At          *time.Time `json:"at"`
	Message     string     `json:"message"`
}

type slackBody struct {
	Text string `json:"text"`
}

// encode renders a's body in format f.
func encode(f Format, a Alert) ([]byte, error) {
	var v any
	switch f {
	case "", FormatJSON:
		b := jsonBody{
			Version: jsonVersion, Kind: a.Kind, Key: a.Key, Budget: a.Budget, CounterKey: a.CounterKey,
			Spent: a.Spent, Limit: a.Limit, Unit: a.Unit, Currency: a.Currency, Message: a.Message,
			WindowStart: utcOrNil(a.WindowStart), WindowEnd: utcOrNil(a.WindowEnd), At: utcOrNil(a.At),
		}
		if a.Threshold != 0 {
			b.Threshold = &a.Threshold
		}
		v = b
	case FormatSlack:
		v = slackBody{Text: slackText(a)}
	default:
		return nil, fmt.Errorf("%w: unknown format %q", ErrInvalidTarget, f)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a JSON body, not HTML: keep "<" readable for humans reading payloads
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %s body: %w", f, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// utcOrNil gives JSON times in UTC (RFC 3339), and null rather than year 1.
func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// slackText is the one-line Slack message, e.g.
//
//	[tokenmeter] budget team-a (project=demo): 80% of limit reached; spent 80.5 of 100 USD; window 2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z
//
// followed by " — Message" when there is one.
func slackText(a Alert) string {
	var b strings.Builder
	b.WriteString("[tokenmeter] ")
	if a.Budget != "" {
		b.WriteString("budget " + a.Budget)
		if a.CounterKey != "" {
			b.WriteString(" (" + a.CounterKey + ")")
		}
		b.WriteString(": ")
	}
	switch a.Kind {
	case KindBudgetThreshold:
		if a.Threshold != 0 {
			fmt.Fprintf(&b, "%d%% of limit reached", a.Threshold)
		} else {
			b.WriteString("threshold reached")
		}
	case KindProjectedOverrun:
		b.WriteString("projected to overrun its limit")
	case KindAnomaly:
		b.WriteString("anomaly detected")
	default:
		b.WriteString(a.Kind)
	}
	if a.Spent != "" && a.Limit != "" {
		unit := a.Unit
		if a.Unit == "money" || (a.Unit == "" && a.Currency != "") {
			unit = a.Currency
		}
		b.WriteString("; spent " + a.Spent + " of " + a.Limit)
		if unit != "" {
			b.WriteString(" " + unit)
		}
	}
	if !a.WindowStart.IsZero() && !a.WindowEnd.IsZero() {
		b.WriteString("; window " + a.WindowStart.UTC().Format(time.RFC3339) + " to " + a.WindowEnd.UTC().Format(time.RFC3339))
	}
	if a.Message != "" {
		b.WriteString(" — " + a.Message)
	}
	return slackEscape(b.String())
}

// slackEscape makes s one line and escapes the three characters Slack's mrkdwn
// treats as control (https://api.slack.com/reference/surfaces/formatting#escaping),
// so a budget name like "<!channel>" cannot ping a channel or forge a link.
var slackReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r\n", " ", "\n", " ", "\r", " ")

func slackEscape(s string) string { return slackReplacer.Replace(s) }
