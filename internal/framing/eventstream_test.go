package framing

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// esMsg is a Message copied out of the callback.
type esMsg struct {
	MessageType, EventType, ExceptionType, ErrorCode, Payload string
}

// encodeES encodes messages with the SDK's encoder: headers are name/value
// pairs of strings, then the payload.
func encodeES(t testing.TB, msgs ...eventstream.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, m := range msgs {
		if err := enc.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func esEvent(typ, payload string) eventstream.Message {
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("event"))
	return eventstream.Message{Headers: h, Payload: []byte(payload)}
}

func esException(typ, payload string) eventstream.Message {
	var h eventstream.Headers
	h.Set(":exception-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("exception"))
	return eventstream.Message{Headers: h, Payload: []byte(payload)}
}

// esCollect feeds chunks to a fresh decoder and returns the messages, the
// number dropped for their size, the corruption error, and the final
// Pending. A Feed that drops one must say so.
func esCollect(t testing.TB, limit int, chunks ...[]byte) (msgs []esMsg, dropped int, corrupt error, pending bool) {
	d := NewEventStream(limit)
	for _, c := range chunks {
		err := d.Feed(c, func(m Message) error {
			msgs = append(msgs, esMsg{m.MessageType, m.EventType, m.ExceptionType, m.ErrorCode, string(m.Payload)})
			return nil
		})
		before := dropped
		dropped = d.Dropped()
		switch {
		case dropped > before && !errors.Is(err, ErrMessageTooLarge):
			t.Fatalf("Feed dropped a message but returned %v", err)
		case err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMessageTooLarge):
			t.Fatalf("Feed: %v", err)
		}
		if len(d.buf) > max(d.max, esPreludeLen) {
			t.Fatalf("buffered %d bytes, cap %d", len(d.buf), d.max)
		}
	}
	return msgs, dropped, d.Err(), d.Pending()
}

func TestEventStreamSplitAnywhere(t *testing.T) {
	in := encodeES(t,
		esEvent("messageStart", `{"role":"assistant"}`),
		esEvent("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`),
		esEvent("empty", ""),
		esException("throttlingException", `{"message":"slow down"}`),
	)
	want := []esMsg{
		{"event", "messageStart", "", "", `{"role":"assistant"}`},
		{"event", "contentBlockDelta", "", "", `{"contentBlockIndex":0,"delta":{"text":"Hi"}}`},
		{"event", "empty", "", "", ""},
		{"exception", "", "throttlingException", "", `{"message":"slow down"}`},
	}
	for _, chunks := range splits(in) {
		got, tooLarge, corrupt, pending := esCollect(t, 0, chunks...)
		if !reflect.DeepEqual(got, want) || tooLarge != 0 || corrupt != nil || pending {
			t.Fatalf("%d chunks: got %+v tooLarge %d corrupt %v pending %v", len(chunks), got, tooLarge, corrupt, pending)
		}
	}
}

func TestEventStreamPending(t *testing.T) {
	in := encodeES(t, esEvent("a", `{}`), esEvent("b", `{"x":1}`))
	first := len(encodeES(t, esEvent("a", `{}`)))
	for cut := 0; cut <= len(in); cut++ {
		got, _, corrupt, pending := esCollect(t, 0, in[:cut])
		wantN := 0
		if cut >= first {
			wantN = 1
		}
		if cut == len(in) {
			wantN = 2
		}
		wantPending := cut != 0 && cut != first && cut != len(in)
		if len(got) != wantN || pending != wantPending || corrupt != nil {
			t.Fatalf("cut at %d: %d messages, pending %v, corrupt %v", cut, len(got), pending, corrupt)
		}
	}
}

func TestEventStreamCorrupt(t *testing.T) {
	good := encodeES(t, esEvent("a", `{"n":1}`))
	flip := func(i int) []byte {
		b := append(bytes.Clone(good), good...)
		b[len(good)+i] ^= 0x01
		return b
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"payload bit", flip(len(good) - 6)},
		{"message crc", flip(len(good) - 1)},
		{"header bit", flip(esPreludeLen + 2)},
		{"prelude crc", flip(9)},
		{"headers length", flip(7)},
		{"total length", flip(3)},
		{"length below minimum", append(bytes.Clone(good), 0, 0, 0, 15)},
		{"length zero", append(bytes.Clone(good), 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunks := range splits(tt.in) {
				got, _, corrupt, _ := esCollect(t, 0, append(chunks, good)...)
				// The first message always decodes; nothing after the
				// corruption may, not even the good message fed later.
				if len(got) != 1 || !errors.Is(corrupt, ErrCorrupt) {
					t.Fatalf("%d chunks: %d messages, corrupt %v", len(chunks), len(got), corrupt)
				}
			}
		})
	}
}

func TestEventStreamTooLarge(t *testing.T) {
	small := esEvent("small", `{"n":1}`)
	big := esEvent("big", strings.Repeat("y", 300))
	in := encodeES(t, small, big, small)
	limit := len(encodeES(t, small)) + 10
	want := []esMsg{{"event", "small", "", "", `{"n":1}`}, {"event", "small", "", "", `{"n":1}`}}
	for _, chunks := range splits(in) {
		got, tooLarge, corrupt, pending := esCollect(t, limit, chunks...)
		if !reflect.DeepEqual(got, want) || tooLarge != 1 || corrupt != nil || pending {
			t.Fatalf("%d chunks: got %+v tooLarge %d corrupt %v pending %v", len(chunks), got, tooLarge, corrupt, pending)
		}
	}
	// A message over the cap whose prelude is corrupt is not skipped on
	// the strength of its length.
	bad := encodeES(t, big)
	bad[9] ^= 0x01
	if _, tooLarge, corrupt, _ := esCollect(t, limit, bad); tooLarge != 0 || !errors.Is(corrupt, ErrCorrupt) {
		t.Fatalf("corrupt oversized prelude: tooLarge %d, corrupt %v", tooLarge, corrupt)
	}
}

func TestEventStreamEmitError(t *testing.T) {
	in := encodeES(t, esEvent("a", "1"), esEvent("b", "2"))
	stop := errors.New("stop")
	var n int
	err := NewEventStream(0).Feed(in, func(Message) error { n++; return stop })
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("Feed: %v after %d messages; want the first emit error and both messages", err, n)
	}
}

func ExampleEventStream() {
	var body bytes.Buffer
	enc := eventstream.NewEncoder()
	_ = enc.Encode(&body, esEvent("contentBlockDelta", `{"delta":{"text":"Hi"}}`))
	_ = enc.Encode(&body, esException("throttlingException", `{"message":"slow down"}`))

	d := NewEventStream(1 << 16)
	show := func(m Message) error {
		fmt.Printf("%s %s%s %s\n", m.MessageType, m.EventType, m.ExceptionType, m.Payload)
		return nil
	}
	// A body arrives split anywhere, even inside a prelude.
	b := body.Bytes()
	for _, chunk := range [][]byte{b[:5], b[5:70], b[70:]} {
		if err := d.Feed(chunk, show); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("pending:", d.Pending())
	// Output:
	// event contentBlockDelta {"delta":{"text":"Hi"}}
	// exception throttlingException {"message":"slow down"}
	// pending: false
}

// esReference decodes in with the SDK alone, stopping at the first error.
func esReference(in []byte) []esMsg {
	r := bytes.NewReader(in)
	dec := eventstream.NewDecoder()
	var out []esMsg
	for r.Len() > 0 {
		m, err := dec.Decode(r, nil)
		if err != nil {
			return out
		}
		out = append(out, esMsg{
			headerString(m.Headers, ":message-type"), headerString(m.Headers, ":event-type"),
			headerString(m.Headers, ":exception-type"), headerString(m.Headers, ":error-code"), string(m.Payload),
		})
	}
	return out
}

func headerString(h eventstream.Headers, name string) string {
	if v, ok := h.Get(name).(eventstream.StringValue); ok {
		return string(v)
	}
	return ""
}

func FuzzEventStream(f *testing.F) {
	var seed bytes.Buffer
	enc := eventstream.NewEncoder()
	_ = enc.Encode(&seed, esEvent("contentBlockDelta", `{"delta":{"text":"a"}}`))
	_ = enc.Encode(&seed, esException("modelStreamErrorException", `{"message":"x"}`))
	f.Add(seed.Bytes(), uint16(17), uint16(40))
	f.Add(seed.Bytes()[:30], uint16(3), uint16(0))
	f.Add([]byte{0, 0, 0, 16, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}, uint16(5), uint16(16))
	f.Fuzz(func(t *testing.T, in []byte, split, max uint16) {
		at := int(split) % (len(in) + 1)
		limit := int(max)%512 + 1
		whole, wholeBig, wholeBad, wholePending := esCollect(t, limit, in)
		parts, partsBig, partsBad, partsPending := esCollect(t, limit, in[:at], in[at:])
		if !reflect.DeepEqual(whole, parts) || wholeBig != partsBig || (wholeBad == nil) != (partsBad == nil) || wholePending != partsPending {
			t.Fatalf("split at %d changed the result:\nwhole %+v big %d corrupt %v pending %v\nsplit %+v big %d corrupt %v pending %v",
				at, whole, wholeBig, wholeBad, wholePending, parts, partsBig, partsBad, partsPending)
		}
		unlimited, _, _, _ := esCollect(t, len(in)+1, in[:at], in[at:])
		if ref := esReference(in); !reflect.DeepEqual(unlimited, ref) {
			t.Fatalf("differs from the SDK:\ngot  %+v\nwant %+v", unlimited, ref)
		}
	})
}

// converseStream is a realistic ConverseStream body of n text deltas.
func converseStream(t testing.TB, n int) []byte {
	msgs := []eventstream.Message{esEvent("messageStart", `{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY","role":"assistant"}`)}
	for i := range n {
		msgs = append(msgs, esEvent("contentBlockDelta",
			fmt.Sprintf(`{"contentBlockIndex":0,"delta":{"text":" word%d"},"p":"abcdefghijklmnopqrstu"}`, i)))
	}
	msgs = append(msgs, esEvent("contentBlockStop", `{"contentBlockIndex":0,"p":"abcdefghijklmnopqrstuvwxyzAB"}`),
		esEvent("messageStop", `{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJ","stopReason":"end_turn"}`),
		esEvent("metadata", `{"metrics":{"latencyMs":812},"p":"abcdefghijklm","usage":{"inputTokens":25,"outputTokens":200,"totalTokens":225}}`))
	return encodeES(t, msgs...)
}

func BenchmarkEventStream(b *testing.B) {
	body := converseStream(b, 200)
	chunks := chunked(body, 100, 1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	d := NewEventStream(0)
	var n int
	emit := func(m Message) error { n += len(m.Payload); return nil }
	for b.Loop() {
		for _, c := range chunks {
			_ = d.Feed(c, emit)
		}
	}
	if d.Err() != nil || d.Pending() {
		b.Fatalf("err %v pending %v", d.Err(), d.Pending())
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	allocs := testing.AllocsPerRun(10, func() {
		for _, c := range chunks {
			_ = d.Feed(c, emit)
		}
	})
	b.ReportMetric(allocs/float64(len(chunks)), "allocs/chunk")
	b.ReportMetric(allocs/203, "allocs/message")
}
