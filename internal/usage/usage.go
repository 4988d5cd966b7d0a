// Package usage is the provider-neutral account of what one request consumed:
// token counts in disjoint billable classes whose sum is every billed token.
//
// Providers report overlapping numbers (OpenAI's prompt_tokens include cached
// tokens, its completion_tokens include reasoning tokens). Each dialect
// normalises them into these classes once, so pricing never has to know which
// provider a request went to.
package usage

// Class is one disjoint billable class of tokens.
type Class uint8

// The classes. Their sum is every token the provider bills.
const (
	Input        Class = iota // uncached prompt tokens
	CacheRead                 // prompt tokens served from a cache
	CacheWrite                // prompt tokens written to a cache (default / 5-minute TTL)
	CacheWrite1h              // prompt tokens written to a 1-hour cache
	Output                    // generated tokens that are not reasoning
	Reasoning                 // hidden reasoning ("thinking") tokens
	AudioInput                // audio prompt tokens (uncached)
	AudioOutput               // generated audio tokens
	ImageInput                // image prompt tokens (uncached), where billed apart from text
	ImageOutput               // generated image tokens
	NumClasses
)

var classNames = [NumClasses]string{"input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning",
	"audio_input", "audio_output", "image_input", "image_output"}

// String is the class's name in metrics, configs and records.
func (c Class) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return "unknown"
}

// ParseClass is the inverse of String.
func ParseClass(s string) (Class, bool) {
	for i, n := range classNames {
		if n == s {
			return Class(i), true
		}
	}
	return 0, false
}

// Count is a number of tokens and whether the provider reported it. A count
// that was not reported is zero but must not be read as "the provider said
// zero": the record shows the difference.
type Count struct {
	N        int64
	Reported bool
}

// Unit is a billable quantity that is not tokens.
type Unit uint8

// The units.
const (
	Images      Unit = iota // images generated (see ImageSize, ImageQuality)
	AudioMillis             // audio duration in milliseconds (whisper bills per second)
	Characters              // input characters (text-to-speech bills per character)
	NumUnits
)

var unitNames = [NumUnits]string{"images", "audio_ms", "characters"}

// String is the unit's name in metrics, configs and records.
func (u Unit) String() string {
	if u < NumUnits {
		return unitNames[u]
	}
	return "unknown"
}

// Usage is what one request consumed.
type Usage struct {
	Tokens [NumClasses]Count
	Units  [NumUnits]Count
	// ImageSize and ImageQuality qualify Units[Images] (e.g. "1024x1024",
	// "hd"): per-image prices depend on them.
	ImageSize, ImageQuality string
	// Raw keeps the provider's own numbers, under the provider's own names,
	// beside the normalised classes, so a record can always be re-derived.
	Raw []Field
	// Estimated is set when some counts were estimated by tokenmeter rather
	// than reported by the provider.
	Estimated bool
}

// Field is one raw number as the provider reported it.
type Field struct {
	Name  string
	Value int64
}

// Set records a reported count for c.
func (u *Usage) Set(c Class, n int64) {
	u.Tokens[c] = Count{N: n, Reported: true}
}

// Get returns the count for c (zero when not reported).
func (u *Usage) Get(c Class) int64 { return u.Tokens[c].N }

// Total is the sum of every class: every billed token.
func (u *Usage) Total() int64 {
	var t int64
	for _, c := range u.Tokens {
		t += c.N
	}
	return t
}

// SetUnit records a reported count of a non-token unit.
func (u *Usage) SetUnit(k Unit, n int64) {
	u.Units[k] = Count{N: n, Reported: true}
}

// Reported reports whether the provider reported any count at all.
func (u *Usage) Reported() bool {
	for _, c := range u.Tokens {
		if c.Reported {
			return true
		}
	}
	for _, c := range u.Units {
		if c.Reported {
			return true
		}
	}
	return false
}

// RawValue returns the raw field name's value and whether it was present.
func (u *Usage) RawValue(name string) (int64, bool) {
	for _, f := range u.Raw {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}
