// Package config reads the tokenmeter config file: one YAML file, strictly
// checked (unknown keys are errors), with defaults for everything but the
// price catalog. Load returns an immutable Config; a reload builds a new one
// and swaps it whole.
package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/pricing/builtin"
	"github.com/tokenmeter/tokenmeter/pricing/litellm"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Defaults.
const (
	DefaultGRPCListen  = "127.0.0.1:50051"
	DefaultAdminListen = "127.0.0.1:9464"
	// DefaultMaxMessageBytes is the largest request body tokenmeter reads to
	// meter a request; a larger one gets 413. Envoy's buffer limit for the
	// request must exceed it by EnvoyBufferHeadroom (envoy/envoy.yaml sets
	// 17 MiB, and a test holds the two together): Envoy keeps every chunk of a
	// streamed body until the gate answers, and stops reading the client once
	// it holds its limit, so with a smaller limit a large body would stall
	// until message_timeout (a 504) instead of reaching the 413.
	DefaultMaxMessageBytes = 16 << 20
	// EnvoyBufferHeadroom is what Envoy's buffer limit adds to
	// max_message_bytes: one read past the limit, a rewritten body's growth,
	// gRPC framing. The gRPC server accepts messages of max_message_bytes
	// plus this headroom, so a buffered body just over the limit still
	// arrives and is refused with 413, not with a gRPC error.
	EnvoyBufferHeadroom = 1 << 20
	// DefaultObserverDeadline is how long a gate's admitted request waits for
	// its observer before it is settled at its estimate and recorded
	// unobserved. An observer's stream opens at the request headers, within
	// milliseconds of the gate's answer.
	DefaultObserverDeadline = 10 * time.Second
	// DefaultGateDeadline: a request whose decision would come later than
	// this after its headers arrived is refused as overloaded (503 in the
	// caller's dialect) rather than admitted after Envoy stopped waiting
	// (the shipped message_timeout is 2 s).
	DefaultGateDeadline = 1500 * time.Millisecond
	// DefaultMaxResponseBuffer caps what one response decoder may hold (a JSON
	// body is buffered until it ends; an SSE event until it completes).
	DefaultMaxResponseBuffer = 8 << 20
	// DefaultBufferJSONBelow: a non-streaming response whose Content-Length is
	// at most this is sent by Envoy in one message instead of chunk by chunk.
	DefaultBufferJSONBelow = 1 << 20
	DefaultStoreDir        = "data"
	DefaultLedgerDir       = "data/ledger"
	DefaultReloadInterval  = 5 * time.Second
	// DefaultMaxTokens is the output estimate for a request that sets no
	// max_tokens, used when reserving against a budget.
	DefaultMaxTokens = 4096
	// DefaultShutdownDrain is how long a stopping tokenmeter still serves
	// new streams after its readiness fails: the time Kubernetes takes to
	// remove the pod from its endpoints and Envoy to hear of it.
	DefaultShutdownDrain = 5 * time.Second
	// DefaultShutdownGrace is how long streams in flight then get to end
	// before they are cut. Drain and grace together (25 s) fit Kubernetes'
	// default terminationGracePeriodSeconds (30 s), with 5 s left to close
	// the store and the ledger before the SIGKILL.
	DefaultShutdownGrace = 20 * time.Second
)

// Admission sizes a request's reservation (docs/budgets.md, "Admission").
type Admission string

// The admission modes.
const (
	// AdmissionEstimate reserves prompt bytes / 4 input tokens plus
	// max_tokens (else default_max_tokens) output tokens: close to the real
	// cost, so concurrent requests may together overshoot a budget by what
	// they ran past their estimates.
	AdmissionEstimate Admission = "estimate"
	// AdmissionStrict reserves an upper bound for a text request: one input
	// token per byte of the request body (byte-level BPE never makes more
	// tokens than bytes, and the body holds the prompt and its framing),
	// priced at the dearest input rate (cache writes), plus max_tokens of
	// output. With max_tokens set, concurrent requests can never overshoot.
	AdmissionStrict Admission = "strict"
)

// UnpricedPolicy says what a money budget does with a model the catalog
// cannot price.
type UnpricedPolicy string

// The policies.
const (
	UnpricedDeny  UnpricedPolicy = "deny"  // refuse the request when a money budget applies
	UnpricedAllow UnpricedPolicy = "allow" // let it through; its tokens are metered, its cost counted as unpriced
	// UnpricedFallback prices the request at the FallbackModel's prices, so
	// money budgets hold; it is still counted and recorded as unpriced.
	UnpricedFallback UnpricedPolicy = "fallback"
)

// Config is a loaded, validated config. Treat it as immutable.
type Config struct {
	File string // the path it was loaded from

	GRPCListen  string
	AdminListen string
	// AdminToken, when set, is the bearer token the admin API requires on
	// everything but /healthz and /readyz. Read from AdminTokenEnv.
	AdminToken string

	MaxMessageBytes   int64
	MaxResponseBuffer int64
	BufferJSONBelow   int64
	InjectStreamUsage bool
	DefaultMaxTokens  int64
	// Admission is how a request's reservation is sized: AdmissionEstimate
	// (the default) or AdmissionStrict, an upper bound for text requests.
	Admission Admission
	// ObserverDeadline: see DefaultObserverDeadline.
	ObserverDeadline time.Duration
	// GateDeadline: see DefaultGateDeadline; 0 disables the check.
	GateDeadline time.Duration

	// ReloadInterval is how often the config and catalog files are checked
	// for changes; 0 disables polling (SIGHUP still reloads).
	ReloadInterval time.Duration

	// StoreType is "badger" (embedded, the default) or "redis".
	StoreType       string
	StoreDir        string // Badger's directory: absolute, or relative to the working directory
	StoreSyncWrites bool
	Redis           Redis
	// SettleBeforeResponse settles a request's budgets before its last
	// answer goes back to Envoy, instead of just after: a crash then cannot
	// lose the charge of a request whose caller got the answer, at the cost
	// of the store's write latency on that last message.
	SettleBeforeResponse bool

	// BuiltinCatalog loads the catalog compiled into the binary (package
	// pricing/builtin) before CatalogFiles, which override and extend it.
	BuiltinCatalog bool
	CatalogFiles   []string // resolved relative to the config file
	Catalog        *pricing.Catalog

	// Reporting is the currency of statements and cost metrics (currency.
	// reporting); the catalog's currency when not configured.
	Reporting money.Currency
	// RatesFiles hold the exchange rates (package fx's format), resolved
	// relative to the config file; FX is the table built from them (nil
	// converts a currency only to itself).
	RatesFiles []string
	FX         *fx.Table

	Unpriced UnpricedPolicy
	// Fallback is the catalog entry unknown models are priced at under the
	// fallback policy (unpriced.fallback_model); nil otherwise.
	Fallback *pricing.Entry
	// BudgetUnpriced overrides Unpriced per budget name (deny or allow).
	BudgetUnpriced map[string]UnpricedPolicy
	Dimensions     []attribution.Dimension
	// APIKeys, when set, attributes requests by the API key they carry
	// (attribution.api_keys); nil when off.
	APIKeys *apikey.Config
	Budgets []ratelimit.Budget
	// Routes map path prefixes to dialects, for APIs mounted where their
	// documented path would not be recognised (e.g. /anthropic/ → anthropic_messages).
	Routes []dialect.Route
	// RouteUnpriced[i] overrides the unknown-model policy for requests that
	// Routes[i] chose; a zero Policy inherits the global one.
	RouteUnpriced []RoutePolicy
	// Adjustments are markups and discounts on list prices; the first that
	// matches a request applies.
	Adjustments []Adjustment
	Alerts      Alerts
	Ledger      Ledger
	Statements  Statements
	Metrics     Metrics
	Shutdown    Shutdown
}

// Shutdown is the shutdown section: how a stopping tokenmeter leaves its
// load balancers and its streams (docs/deploy.md, "Rolling updates").
// Unlike the listeners, it is read when the stop begins, so a reload
// changes it.
type Shutdown struct {
	// Drain: readiness fails at once, and new streams are still served for
	// this long. Default DefaultShutdownDrain; 0 goes straight to Grace.
	Drain time.Duration
	// Grace: then new streams are refused, and streams in flight get up to
	// this long to end before they are cut (a cut stream records as
	// partial). Default DefaultShutdownGrace.
	Grace time.Duration
}

// Ledger is the ledger section: where the usage ledger is kept.
type Ledger struct {
	Dir string // absolute, or relative to the working directory; "" keeps no ledger
	// Retention deletes records older than it; 0 keeps them forever.
	Retention time.Duration
	QueueSize int64
	// TimeZone aligns report days, weeks and months and statements' months.
	TimeZone *time.Location
	// CloudEvents, when set, also sends every record as a CloudEvent
	// (ledger.cloudevents); nil when off.
	CloudEvents *CloudEvents
	// Type is "badger" (embedded, in Dir; the default) or "postgres" (one
	// ledger shared by replicas: Postgres).
	Type     string
	Postgres LedgerPostgres
}

// Load reads and validates path and the catalogs it names.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates data, read from file (used in errors and to resolve
// relative paths), and loads the catalogs it names.
func Parse(file string, data []byte) (*Config, error) {
	c := defaults(file)
	w := newWalker(file)
	root, ok := w.Document(data)
	if !ok {
		return nil, w.errs.Err()
	}
	if root == nil {
		return nil, cfgerr.List{{File: file, Reason: "empty file; a config needs at least catalog.files"}}
	}
	cur := &currencyNodes{budgets: map[string]*yaml.Node{}, keys: map[string]string{}}
	w.currencyNodes = cur
	refs := w.sections(c, root, cur)
	if c.Dimensions == nil {
		c.Dimensions = attribution.DefaultDimensions()
	}
	w.crossCheck(c, root)
	w.checkMetrics(c)
	if refs.tokenEnv != "" {
		c.AdminToken = os.Getenv(refs.tokenEnv)
		if c.AdminToken == "" {
			w.failKey("admin.token_env", refs.tokenEnv, "this environment variable is empty or unset")
		}
	}
	if err := w.errs.Err(); err != nil {
		// The catalogs are still read, so that one run of check reports the
		// config's mistakes and the catalogs' together.
		if _, cerr := loadCatalog(c.BuiltinCatalog, c.CatalogFiles); cerr != nil && (c.BuiltinCatalog || len(c.CatalogFiles) > 0) {
			return nil, errors.Join(err, fmt.Errorf("load catalog: %w", cerr))
		}
		return nil, err
	}
	if err := c.resolve(cur, refs); err != nil {
		return nil, err
	}
	return c, nil
}

// defaults is the config of an empty file, before the walk sets what the
// file says.
func defaults(file string) *Config {
	return &Config{
		File:              file,
		GRPCListen:        DefaultGRPCListen,
		AdminListen:       DefaultAdminListen,
		MaxMessageBytes:   DefaultMaxMessageBytes,
		MaxResponseBuffer: DefaultMaxResponseBuffer,
		BufferJSONBelow:   DefaultBufferJSONBelow,
		InjectStreamUsage: true,
		DefaultMaxTokens:  DefaultMaxTokens,
		Admission:         AdmissionEstimate,
		ObserverDeadline:  DefaultObserverDeadline,
		GateDeadline:      DefaultGateDeadline,
		StoreDir:          DefaultStoreDir,
		StoreType:         "badger",
		ReloadInterval:    DefaultReloadInterval,
		Unpriced:          UnpricedDeny,
		BuiltinCatalog:    true,
		Alerts:            Alerts{Interval: 10 * time.Second, ForecastInterval: 5 * time.Minute},
		Ledger:            Ledger{Dir: DefaultLedgerDir, Type: "badger"},
		Shutdown:          Shutdown{Drain: DefaultShutdownDrain, Grace: DefaultShutdownGrace},
	}
}

// parseRefs are what the walk leaves to resolve once the catalog is loaded,
// or to read from the environment.
type parseRefs struct {
	tokenEnv      string
	routePolicies []routePolicy
	fallback      fallbackRef
}

// sections walks the top-level keys, one reader per section.
func (w *walker) sections(c *Config, root *yaml.Node, cur *currencyNodes) *parseRefs {
	refs := &parseRefs{}
	w.mapping(root, "", map[string]func(*yaml.Node, string){
		"listen": func(n *yaml.Node, k string) {
			w.mapping(n, k, map[string]func(*yaml.Node, string){
				"grpc":  w.str(&c.GRPCListen),
				"admin": w.str(&c.AdminListen),
			})
		},
		"admin": func(n *yaml.Node, k string) {
			w.mapping(n, k, map[string]func(*yaml.Node, string){"token_env": w.str(&refs.tokenEnv)})
		},
		"extproc": w.extprocSection(c),
		"reload": func(n *yaml.Node, k string) {
			w.mapping(n, k, map[string]func(*yaml.Node, string){"interval": w.duration(&c.ReloadInterval)})
		},
		"store":    w.storeSection(c),
		"catalog":  w.catalogSection(c),
		"currency": w.currency(c, cur),
		"alerts":   w.alerts(c),
		"metrics":  w.metrics(&c.Metrics),
		"ledger":   w.ledgerSection(c),
		"unpriced": w.unpricedSection(c, &refs.fallback),
		"attribution": func(n *yaml.Node, k string) {
			w.mapping(n, k, map[string]func(*yaml.Node, string){
				"dimensions": func(n *yaml.Node, k string) { c.Dimensions = w.dimensions(n, k) },
				"api_keys":   w.apiKeys(&c.APIKeys),
			})
		},
		"routes": func(n *yaml.Node, k string) {
			w.Sequence(n, k, "a list of routes", func(item *yaml.Node, k string) {
				if r, p, ok := w.route(item, k); ok {
					c.Routes = append(c.Routes, r)
					refs.routePolicies = append(refs.routePolicies, p)
				}
			})
		},
		"adjustments": w.adjustmentsSection(c),
		"budgets":     w.budgetsSection(c),
		"shutdown":    w.shutdownSection(c),
		"statements":  w.statementsSection(c),
	})
	return refs
}

// resolve loads the catalogs and rates a valid walk names, and checks what
// needs them: currencies with a rate in force, fallback models in the
// catalog.
func (c *Config) resolve(cur *currencyNodes, refs *parseRefs) error {
	cat, err := loadCatalog(c.BuiltinCatalog, c.CatalogFiles)
	if err != nil {
		return fmt.Errorf("load catalog: %w", err)
	}
	c.Catalog = cat
	if len(c.RatesFiles) > 0 {
		if c.FX, err = loadRates(c.RatesFiles); err != nil {
			return err
		}
	}
	if err := c.checkCurrencies(cur, time.Now()); err != nil {
		return err
	}
	switch {
	case c.Unpriced == UnpricedFallback && refs.fallback.model == "":
		return cfgerr.List{{File: c.File, Key: "unpriced.fallback_model", Reason: "required with policy fallback: the catalog model unknown models are priced at"}}
	case c.Unpriced == UnpricedFallback:
		e, ok := cat.LookupAnyProvider(refs.fallback.model, time.Now())
		if !ok {
			return cfgerr.List{cfgerr.At(c.File, refs.fallback.node, "unpriced.fallback_model", "not a model in the catalog")}
		}
		c.Fallback = e
	}
	var errs cfgerr.List
	for _, p := range refs.routePolicies {
		rp := RoutePolicy{Policy: p.policy}
		if p.policy == UnpricedFallback {
			e, ok := cat.LookupAnyProvider(p.model, time.Now())
			if !ok {
				errs = append(errs, cfgerr.At(c.File, p.modelNode, p.modelKey, "not a model in the catalog"))
			}
			rp.Fallback = e
		}
		c.RouteUnpriced = append(c.RouteUnpriced, rp)
	}
	return errs.Err()
}

// RoutePolicy is a route's unknown-model policy.
type RoutePolicy struct {
	Policy   UnpricedPolicy // empty: the global policy
	Fallback *pricing.Entry // with UnpricedFallback
}

// UnpricedFor is the policy a money budget applies to an unpriced model on a
// request that route chose (-1: no configured route). The most specific
// setting wins: the budget's, then the route's, then the global one.
func (c *Config) UnpricedFor(budget string, route int) UnpricedPolicy {
	if p, ok := c.BudgetUnpriced[budget]; ok {
		return p
	}
	if route >= 0 && route < len(c.RouteUnpriced) && c.RouteUnpriced[route].Policy != "" {
		return c.RouteUnpriced[route].Policy
	}
	return c.Unpriced
}

// FallbackFor is the entry an unknown model is priced at on a request that
// route chose, or nil when the policy there is not fallback.
func (c *Config) FallbackFor(route int) *pricing.Entry {
	if route >= 0 && route < len(c.RouteUnpriced) && c.RouteUnpriced[route].Policy != "" {
		return c.RouteUnpriced[route].Fallback
	}
	return c.Fallback
}

// loadCatalog reads the catalogs in order. A file ending in .json is
// LiteLLM's model_prices_and_context_window.json, converted on the way in
// (its as_of is the file's modification date); everything else is YAML.
func loadCatalog(withBuiltin bool, paths []string) (*pricing.Catalog, error) {
	srcs := make([]pricing.Source, 0, len(paths)+1)
	if withBuiltin {
		srcs = append(srcs, builtin.Source())
	}
	for _, p := range paths {
		if strings.HasSuffix(strings.ToLower(p), ".json") {
			data, _, err := litellm.Load(p, time.Time{})
			if err != nil {
				return nil, err
			}
			srcs = append(srcs, pricing.Source{Name: p + " (converted from LiteLLM)", Data: data})
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read catalog: %w", err)
		}
		srcs = append(srcs, pricing.Source{Name: p, Data: data})
	}
	return pricing.LoadSources(srcs...)
}

// resolve makes a path in the config file relative to the file itself, so a
// config works whatever the working directory.
func resolve(configFile, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(configFile), p)
}

// routePolicy is a route's unpriced section as read, resolved against the
// catalog once it is loaded.
type routePolicy struct {
	policy    UnpricedPolicy
	model     string
	modelNode *yaml.Node
	modelKey  string
}

func (w *walker) route(n *yaml.Node, key string) (dialect.Route, routePolicy, bool) {
	before := len(w.errs)
	var host, prefix, name, provider string
	var p routePolicy
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"host":     w.str(&host),
		"prefix":   w.str(&prefix),
		"dialect":  w.str(&name),
		"provider": w.str(&provider),
		"unpriced": func(n *yaml.Node, k string) {
			w.mapping(n, k, map[string]func(*yaml.Node, string){
				"policy": w.unpricedPolicy(&p.policy),
				"fallback_model": func(n *yaml.Node, k string) {
					p.modelNode, p.modelKey = n, k
					p.model, _ = w.Scalar(n, k, "the catalog model unknown models are priced at")
				},
			})
			switch {
			case p.policy == UnpricedFallback && p.model == "":
				w.Fail(n, k, "fallback_model is required with policy fallback")
			case p.policy != UnpricedFallback && p.model != "":
				w.Fail(p.modelNode, p.modelKey, "only policy fallback uses a fallback_model")
			}
		},
	})
	switch {
	case host == "" && prefix == "":
		w.Fail(n, key, "want a host, a prefix, or both")
	case prefix != "" && !strings.HasPrefix(prefix, "/"):
		w.failKey(join(key, "prefix"), prefix, "want a path prefix starting with /")
	case strings.ContainsAny(host, ":/ ") || (strings.Contains(host, "*") && !strings.HasPrefix(host, "*.")):
		w.failKey(join(key, "host"), host, `want a host name without port, or "*.example.com"`)
	}
	if provider != "" && !budgetName(provider) {
		w.failKey(join(key, "provider"), provider, "want a provider name of letters, digits, '-', '_' or '.'")
	}
	reg := dialect.DefaultRegistry()
	d, ok := reg.ByName(name)
	if !ok {
		w.failKey(join(key, "dialect"), name, "unknown dialect; known: "+strings.Join(reg.Names(), ", "))
	}
	r := dialect.Route{Host: strings.ToLower(host), Prefix: prefix, Dialect: d, Provider: strings.ToLower(provider)}
	return r, p, len(w.errs) == before
}

// keyLimits reads a budget's per-key limits, in its unit:
//
//	match: {user: "*"}
//	limit: {tokens: 100000}          # every user not listed
//	key_limits: {"user=ann": 500000} # keys as the budget names them
func (w *walker) keyLimits(b *ratelimit.Budget, n *yaml.Node, key string) {
	w.pairs(n, key, "a mapping of key to limit", func(name string, v *yaml.Node, k string) {
		if err := b.CheckKey(name); err != nil {
			w.failKey(k, name, err.Error())
			return
		}
		what := fmt.Sprintf("a whole number from 1 to %d", int64(1)<<62)
		if b.Unit == ratelimit.Money {
			what = "a positive decimal amount, as the budget's money limit"
		}
		val, ok := w.Scalar(v, k, what)
		if !ok {
			return
		}
		var limit int64
		if b.Unit == ratelimit.Money {
			a, err := money.Parse(val)
			if err != nil || a <= 0 {
				w.Fail(v, k, "want "+what)
				return
			}
			limit = int64(a)
		} else {
			i, err := strconv.ParseInt(val, 10, 64)
			if err != nil || i < 1 || i > 1<<62 {
				w.Fail(v, k, "want "+what)
				return
			}
			limit = i
		}
		if b.KeyLimits == nil {
			b.KeyLimits = map[string]int64{}
		}
		b.KeyLimits[name] = limit
	})
}

func (w *walker) count(b *ratelimit.Budget, limits *int, unit ratelimit.Unit) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		*limits++
		b.Unit = unit
		w.integer(&b.Limit, 1, 1<<62)(n, k)
	}
}

func budgetName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return s != ""
}

// crossCheck validates what spans sections: budget selectors name configured
// dimensions, budget names are unique, a catalog is given.
func (w *walker) crossCheck(c *Config, root *yaml.Node) {
	dims := map[string]bool{}
	for _, d := range c.Dimensions {
		dims[d.Name] = true
	}
	names := map[string]bool{}
	for i, b := range c.Budgets {
		key := w.itemKeys["budgets"][i]
		if names[b.Name] {
			w.failKey(key+".name", b.Name, "budget name used twice")
		}
		names[b.Name] = true
		for _, m := range b.Match {
			if !dims[m.Dimension] {
				w.failKey(key+".match."+m.Dimension, m.Dimension,
					"not a configured dimension; configured: "+strings.Join(slices.Sorted(maps.Keys(dims)), ", "))
			}
		}
	}
	w.checkAdjustments(c, dims)
	w.checkCloudEvents(c, dims)
	w.checkStatements(c, dims)
	w.checkAPIKeys(c)
	if a := c.Alerts.Anomaly; a != nil {
		for i, g := range a.GroupBy {
			if !dims[g] {
				key := fmt.Sprintf("alerts.anomaly.group_by[%d]", i)
				w.failKey(key, g, "not a configured dimension; configured: "+strings.Join(slices.Sorted(maps.Keys(dims)), ", "))
			}
		}
	}
	if len(c.CatalogFiles) == 0 && !c.BuiltinCatalog {
		w.Fail(root, "catalog.files", "required with catalog.builtin: false: at least one price catalog file")
	}
}
