package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
)

// lookupFlags are the flags show and cost share: which catalog, which
// provider qualification, which instant.
type lookupFlags struct {
	Config   string `name:"config" placeholder:"FILE" help:"Config file naming the catalogs (default: tokenmeter.yaml if present, else the built-in catalog)."`
	Provider string `name:"provider" placeholder:"P" help:"Provider qualification, e.g. openai, azure, bedrock."`
	At       string `name:"at" placeholder:"INSTANT" help:"Price in force at this RFC 3339 instant (default: now)."`
}

// load reads --config; without it, tokenmeter.yaml in the working
// directory, or the built-in catalog when there is none, so that prices can
// be looked up before any config is written.
func (l *lookupFlags) load() (*config.Config, error) {
	path := l.Config
	if path == "" {
		path = "tokenmeter.yaml"
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return config.Parse("(the built-in catalog)", []byte("catalog: {builtin: true}\n"))
		}
	}
	return config.Load(path)
}

// resolve loads the catalog and finds model.
func (l *lookupFlags) resolve(model string) (*pricing.Entry, *config.Config, error) {
	cfg, err := l.load()
	if err != nil {
		return nil, nil, configError{err}
	}
	at := time.Now()
	if l.At != "" {
		if at, err = time.Parse(time.RFC3339, l.At); err != nil {
			return nil, nil, usageError{fmt.Sprintf("--at %q: want an RFC 3339 instant", l.At)}
		}
	}
	e, ok := cfg.Catalog.Lookup(l.Provider, model, at)
	if l.Provider == "" {
		// Without --provider, a provider-qualified entry is still found.
		e, ok = cfg.Catalog.LookupAnyProvider(model, at)
	}
	if !ok {
		return nil, nil, fmt.Errorf("model %q (provider %q) has no price in the catalog at %s: it would be metered as unpriced",
			model, l.Provider, at.UTC().Format(time.RFC3339))
	}
	return e, cfg, nil
}

// pricesShowCmd prints the entry a model resolves to, and where each number
// came from.
type pricesShowCmd struct {
	lookupFlags
	Model string `arg:"" name:"model" help:"The model, as a request names it."`
}

func (cmd *pricesShowCmd) Run(s stdio) error {
	e, cfg, err := cmd.resolve(cmd.Model)
	if err != nil {
		return err
	}
	stdout := s.out
	cur := cfg.Catalog.Currency()
	fmt.Fprintf(stdout, "%s resolves to %s", cmd.Model, e.Name)
	if e.Provider != "" {
		fmt.Fprintf(stdout, " (provider %s)", e.Provider)
	}
	fmt.Fprintf(stdout, "\n  defined at %s:%d\n  source     %s\n  as of      %s\n", e.File, e.Line, e.Source, e.AsOf.Format(time.DateOnly))
	if !e.EffectiveFrom.IsZero() {
		fmt.Fprintf(stdout, "  effective  from %s\n", e.EffectiveFrom.Format(time.RFC3339))
	}
	if len(e.Aliases)+len(e.Match) > 0 {
		fmt.Fprintf(stdout, "  also       %s\n", strings.Join(append(slices.Clone(e.Aliases), e.Match...), ", "))
	}
	fmt.Fprintf(stdout, "  per million tokens, %s:\n", cur)
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		written, from, ok := e.Origin(c)
		switch {
		case !ok:
			fmt.Fprintf(stdout, "    %-15s no price (such usage is unpriced)\n", c)
		case written:
			fmt.Fprintf(stdout, "    %-15s %s\n", c, showPrice(e.Prices[c]))
		default:
			fmt.Fprintf(stdout, "    %-15s %s (defaults to %s)\n", c, showPrice(e.Prices[c]), from)
		}
	}
	showUnits(stdout, e)
	for _, t := range e.ContextTiers {
		fmt.Fprintf(stdout, "  above %d prompt tokens: input %s, output %s\n", t.AboveInputTokens,
			showPrice(t.Prices[usage.Input]), showPrice(t.Prices[usage.Output]))
	}
	for _, t := range e.ServiceTiers {
		if t.Multiplier != 0 && t.Multiplier.String() != "1" {
			fmt.Fprintf(stdout, "  service tier %s: every price × %s\n", t.Name, t.Multiplier)
			continue
		}
		fmt.Fprintf(stdout, "  service tier %s: explicit prices\n", t.Name)
	}
	return nil
}

func showPrice(p money.PerMillion) string { return money.Amount(p).String() }

func showUnits(w io.Writer, e *pricing.Entry) {
	u := e.Units
	if u.Request != 0 {
		fmt.Fprintf(w, "  per request      %s\n", money.Amount(u.Request).String())
	}
	if u.HasAudioSecond {
		fmt.Fprintf(w, "  per audio second %s (rounded up per request)\n", money.Amount(u.AudioSecond).String())
	}
	if u.HasCharacters1k {
		fmt.Fprintf(w, "  per 1k characters %s\n", money.Amount(u.Characters1k).String())
	}
	keys := make([]string, 0, len(u.Image))
	for k := range u.Image {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  per image %-20s %s\n", k, money.Amount(u.Image[k]).String())
	}
}

// pricesCostCmd prices a usage given by hand: --usage input=1000,output=200,...
type pricesCostCmd struct {
	lookupFlags
	Model       string `name:"model" required:"" placeholder:"M" help:"Model name."`
	Usage       string `name:"usage" required:"" placeholder:"SPEC" help:"Usage as class=count,...: ${usage_classes}, images, audio_ms, characters."`
	ServiceTier string `name:"service-tier" placeholder:"T" help:"Service tier: batch, flex or priority."`
}

func (c *pricesCostCmd) Run(s stdio) error {
	u, err := parseUsage(c.Usage)
	if err != nil {
		return usageError{err.Error()}
	}
	e, cfg, err := c.resolve(c.Model)
	if err != nil {
		return err
	}
	cost, err := e.Cost(&u, pricing.CostOptions{ServiceTier: c.ServiceTier})
	if err != nil && !errors.Is(err, pricing.ErrUnknownServiceTier) {
		return err
	}
	fmt.Fprintf(s.out, "%s %s\n", money.Amount(cost).String(), cfg.Catalog.Currency())
	if err != nil {
		fmt.Fprintf(s.err, "note: %v\n", err)
	}
	return nil
}

func classList() string {
	names := make([]string, 0, usage.NumClasses)
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		names = append(names, c.String())
	}
	return strings.Join(names, ", ")
}

func parseUsage(spec string) (usage.Usage, error) {
	var u usage.Usage
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 {
			return u, fmt.Errorf("--usage %q: want class=count with a whole count", part)
		}
		if c, ok := usage.ParseClass(k); ok {
			u.Set(c, n)
			continue
		}
		switch k {
		case "images":
			u.SetUnit(usage.Images, n)
		case "audio_ms":
			u.SetUnit(usage.AudioMillis, n)
		case "characters":
			u.SetUnit(usage.Characters, n)
		default:
			return u, fmt.Errorf("--usage: unknown class %q; want one of %s, images, audio_ms, characters", k, classList())
		}
	}
	return u, nil
}
