package pricing

import (
	"fmt"
	"math"
	"strings"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// CostOptions are what the provider said about how it served a request,
// beyond its usage.
type CostOptions struct {
	// ServiceTier is the tier the provider reports it served the request
	// at, matched case-insensitively: batch, flex or priority select the
	// entry's tier of that name. Empty, "default" and "standard" (OpenAI's
	// and Anthropic's names for the base tier) mean the base prices.
	//
	// Any other name, or a tier the entry does not list, is priced at the
	// base prices and flagged: Cost returns that amount together with an
	// error wrapping ErrUnknownServiceTier. Base prices because a request
	// that certainly ran is better charged at its standard price than not
	// at all (an unpriced request would leave money budgets untouched),
	// and flagged because a priority request may cost more than that.
	ServiceTier string
}

// prompt is the request size context tiers are chosen by: every prompt
// class (input, cache_read, cache_write, cache_write_1h, audio_input,
// image_input), as Gemini and Claude count a long context, multimodal
// parts and cached parts included. The sum saturates instead of wrapping.
func prompt(u *usage.Usage) int64 {
	var t int64
	for _, c := range [...]usage.Class{usage.Input, usage.CacheRead, usage.CacheWrite, usage.CacheWrite1h,
		usage.AudioInput, usage.ImageInput} {
		n := max(u.Tokens[c].N, 0) // a negative count fails Cost anyway
		if t > math.MaxInt64-n {
			return math.MaxInt64
		}
		t += n
	}
	return t
}

// Cost prices one request's usage. The context tier is chosen first, by
// prompt size (strictly above a tier's threshold), then the service tier
// applies (see CostOptions), then:
//
//	Σ tokens × price per million  +  units.request (once per call)
//	+ ⌈AudioMillis / 1000⌉ × audio_second  +  Characters × characters_1k / 1000
//	+ Images × the image price of "SIZE/QUALITY", else "SIZE", else "default"
//
// The whole sum, times the service tier's multiplier, is computed exactly in
// 128-bit integers (192 bits with the multiplier) and rounded once, half up,
// to a nano-unit. Usage the entry has no price for is ErrNoPrice, a negative
// count ErrNegativeCount.
//
// Cost does not allocate unless it returns an error, or an image size and
// quality are unusually long.
func (e *Entry) Cost(u *usage.Usage, o CostOptions) (money.Amount, error) {
	if u == nil {
		return 0, fmt.Errorf("pricing %s: no usage", e.Name)
	}
	st, tierErr := e.serviceTier(o.ServiceTier)
	level := 0
	for i, n := len(e.ContextTiers)-1, prompt(u); i >= 0; i-- {
		if n > e.ContextTiers[i].AboveInputTokens {
			level = i + 1
			break
		}
	}
	prices, has := &e.Prices, &e.Has
	if level > 0 {
		prices, has = &e.ContextTiers[level-1].Prices, &e.ContextTiers[level-1].Has
	}
	mult := money.Amount(money.Scale)
	if st != nil {
		mult = st.Multiplier
		if st.lists != nil {
			prices, has = &st.lists[level].prices, &st.lists[level].has
		}
	}
	var s money.Sum
	for c, n := range u.Tokens {
		switch {
		case n.N < 0:
			return 0, fmt.Errorf("pricing %s: %s %d: %w", e.Name, usage.Class(c), n.N, ErrNegativeCount)
		case n.N > 0 && !has[c]:
			return 0, fmt.Errorf("pricing %s: %d %s tokens: %w", e.Name, n.N, usage.Class(c), ErrNoPrice)
		}
		s.AddSaturating(n.N, prices[c])
	}
	if err := e.addUnits(&s, u); err != nil {
		return 0, err
	}
	var a money.Amount
	var err error
	if mult == money.Scale {
		a, err = s.Amount() // the same result, without the 192-bit product
	} else {
		a, err = s.AmountTimes(mult)
	}
	if err != nil {
		return 0, fmt.Errorf("pricing %s: %w", e.Name, err)
	}
	return a, tierErr
}

// serviceTier returns the entry's tier called name, nil for the base
// prices, and an error wrapping ErrUnknownServiceTier when name is neither.
func (e *Entry) serviceTier(name string) (*ServiceTier, error) {
	if name == "" || strings.EqualFold(name, "default") || strings.EqualFold(name, "standard") {
		return nil, nil
	}
	for i := range e.ServiceTiers {
		if strings.EqualFold(e.ServiceTiers[i].Name, name) {
			return &e.ServiceTiers[i], nil
		}
	}
	return nil, fmt.Errorf("pricing %s: service tier %q: %w", e.Name, name, ErrUnknownServiceTier)
}

// addUnits adds the per-request fee and the unit usage of u to s.
func (e *Entry) addUnits(s *money.Sum, u *usage.Usage) error {
	for k, n := range u.Units {
		if n.N < 0 {
			return fmt.Errorf("pricing %s: %s %d: %w", e.Name, usage.Unit(k), n.N, ErrNegativeCount)
		}
	}
	p := &e.Units
	s.AddEach(1, p.Request)
	if n := u.Units[usage.AudioMillis].N; n > 0 {
		if !p.HasAudioSecond {
			return e.noUnitPrice(n, usage.AudioMillis)
		}
		// Whole seconds, rounded up, per request: 61.001 s bills as 62.
		secs := n / 1000
		if n%1000 != 0 {
			secs++
		}
		s.AddEach(secs, p.AudioSecond)
	}
	if n := u.Units[usage.Characters].N; n > 0 {
		if !p.HasCharacters1k {
			return e.noUnitPrice(n, usage.Characters)
		}
		s.AddPerThousand(n, p.Characters1k)
	}
	// A response that reports tokens is billed by them (gpt-image-1); its
	// image count is information, not a second bill. One that reports none
	// is billed per image (DALL·E).
	if n := u.Units[usage.Images].N; n > 0 && !tokensReported(u) {
		price, ok := p.imagePrice(u.ImageSize, u.ImageQuality)
		if !ok {
			return fmt.Errorf("pricing %s: %d images of size %q, quality %q: %w",
				e.Name, n, u.ImageSize, u.ImageQuality, ErrNoPrice)
		}
		s.AddEach(n, price)
	}
	return nil
}

// tokensReported reports whether the provider reported any token count.
func tokensReported(u *usage.Usage) bool {
	for _, c := range u.Tokens {
		if c.Reported {
			return true
		}
	}
	return false
}

func (e *Entry) noUnitPrice(n int64, k usage.Unit) error {
	return fmt.Errorf("pricing %s: %d %s: %w", e.Name, n, k, ErrNoPrice)
}

// imagePrice finds the price of one image: "size/quality", then "size",
// then "default", all lower-cased.
func (p *UnitPrices) imagePrice(size, quality string) (money.Amount, bool) {
	if p.Image == nil {
		return 0, false
	}
	var buf [64]byte
	key := appendLower(buf[:0], size)
	if size != "" && quality != "" {
		full := appendLower(append(key, '/'), quality)
		if a, ok := p.Image[string(full)]; ok {
			return a, true
		}
	}
	if size != "" {
		if a, ok := p.Image[string(key)]; ok {
			return a, true
		}
	}
	a, ok := p.Image["default"]
	return a, ok
}
