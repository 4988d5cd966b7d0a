// Package redisstore is a ratelimit.Store on Redis, shared by every replica
// of tokenmeter: one budget, one set of counters, however many processes
// admit requests against it.
//
// # Layout
//
// Counters are grouped in families, one per budget key. A family is three
// keys sharing one Redis Cluster hash tag, <prefix>:{<budget>\x1f<key>}:
//
//	…:c  hash  s<start> spent, r<start> reserved, e<start> window end (ms)
//	…:l  hash  lease id → "<start>:<-amount>," for each hold it has here
//	…:x  zset  lease id scored by its expiry (ms)
//
// <start> is a window's (or a rolling window's bucket's) start in Unix
// milliseconds. In names, '%', '{', '}', SCAN's glob metacharacters and
// control bytes are percent-escaped, so the separator \x1f (ASCII unit
// separator) and the tag's closing brace cannot occur in them. A rolling
// check sums the family's buckets in [Since, Start].
//
// Records (ratelimit.Records) and claims have tags of their own, joined by
// \x1e (ASCII record separator) rather than \x1f, so that no family's tag,
// and no Reset's SCAN pattern, can match them:
//
//	<prefix>:{rec\x1e<kind>}:h    hash  record name → data, every record of kind
//	<prefix>:{claim\x1e<key>}:k   string "1", with a TTL until the claim ends
//
// One hash per kind makes ListRecords one HGETALL, on one slot in Cluster;
// record names are hash fields, binary-safe and not escaped. Records never
// expire. Each claim is its own slot: claims are single-key SET NX, and
// spread over the cluster's nodes.
//
// # Atomicity
//
// Reserve and Settle run as Lua scripts (EVALSHA, falling back to EVAL when
// the server does not have the script), which Redis runs atomically: a
// script checks every hold, then reserves them all or none. Counters are
// changed only by HINCRBY, so they stay exact int64s; the scripts sum and
// compare them in two base-10⁹ halves, since Lua numbers are doubles.
//
// On a single server (or a primary with replicas) one script covers every
// hold of a request, however many budgets it matches: Reserve is atomic, as
// the Store contract asks. In Redis Cluster a script may only touch keys of
// one hash slot, so Reserve groups the holds by slot and reserves group by
// group in ascending slot order; when a group refuses, the groups already
// reserved are released again. No check ever passes that the counters
// cannot afford, so this never overshoots; but between those steps another
// request can see the first groups' reservation, and be refused although the
// request that made it ends up holding nothing. That spurious refusal, of a
// request racing one that spans slots, is the price of running on Cluster.
// Settle also runs per group, each atomic on its own.
//
// A lease id that is already held is detected in the families the Reserve
// touches; that is all a duplicate could disturb, since Settle releases in
// each family only what the lease holds there.
//
// # Clock
//
// The scripts take the time from the caller (Options.Now) rather than from
// Redis's TIME: tests run on a fake clock, and replicas agree on lease
// expiry and window ends to within their clock skew.
//
// # Expiry
//
// Leases expire without a sweeper: every script first releases the expired
// leases of the families it touches. Keys are given a TTL from the caller's
// clock, so that they outlive their latest window's end by one to two hours
// (a relative PEXPIRE, not PEXPIREAT: an absolute time from a fake clock
// would be read by Redis's own clock). When a new window or bucket starts in
// a family, its counters whose window has ended, and rolling buckets older
// than Since, are dropped.
//
// List and Reset(budget, "") find families with SCAN (on every primary in
// Cluster): O(keys under the prefix), for status and administration, never
// on a request's path.
//
// The client is github.com/redis/go-redis/v9, Redis's own Go client: well
// kept, and it handles Cluster routing, redirects and script caching.
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// DefaultKeyPrefix starts every key the store writes.
const DefaultKeyPrefix = "tm"

// grace is how long a family outlives the end of its latest window (up to
// twice that), for late settles and readers.
const grace = time.Hour

// undoTimeout bounds the release of a half-made reservation, which runs even
// when the request's context is done.
const undoTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// Addrs is the server's host:port, or in Cluster mode some of the
	// cluster's nodes (the rest are discovered). Required.
	Addrs []string
	// Cluster talks Redis Cluster. Reservations spanning hash slots are then
	// not atomic as a whole (see the package doc).
	Cluster bool
	// Username and Password authenticate (ACL user, or the requirepass
	// password with an empty Username). The password is never logged.
	Username string
	Password string
	// DB is the database number; 0 unless set, and only 0 in Cluster.
	DB int
	// KeyPrefix starts every key; default DefaultKeyPrefix. It must not
	// contain '{' or '}', which would change the Cluster hash tag.
	KeyPrefix string
	// DialTimeout and ReadTimeout bound connecting and each command; zero
	// means go-redis's defaults (5s and 3s). Writes use ReadTimeout.
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// Now is the clock that expires leases and windows; default time.Now.
	Now func() time.Time
	// Logger receives what Reserve cannot return: a refused request's
	// partial reservation that could not be released (it expires with its
	// lease). Default slog.Default().
	Logger *slog.Logger
}

// String describes o without its password.
func (o Options) String() string {
	pw := ""
	if o.Password != "" {
		pw = " password=[redacted]"
	}
	return fmt.Sprintf("redis addrs=%s cluster=%t db=%d prefix=%q user=%q%s",
		strings.Join(o.Addrs, ","), o.Cluster, o.DB, o.KeyPrefix, o.Username, pw)
}

// LogValue keeps the password out of structured logs.
func (o Options) LogValue() slog.Value { return slog.StringValue(o.String()) }

// Store is a ratelimit.Store on Redis.
type Store struct {
	rdb     redis.UniversalClient
	cluster *redis.ClusterClient // nil on a single server
	prefix  string
	now     func() time.Time
	log     *slog.Logger
}

var (
	//go:embed lua/common.lua
	luaCommon string
	//go:embed lua/reserve.lua
	luaReserve string
	//go:embed lua/settle.lua
	luaSettle string
	//go:embed lua/get.lua
	luaGet string
	//go:embed lua/list.lua
	luaList string

	reserveScript = redis.NewScript(luaCommon + luaReserve)
	settleScript  = redis.NewScript(luaCommon + luaSettle)
	getScript     = redis.NewScript(luaCommon + luaGet)
	listScript    = redis.NewScript(luaCommon + luaList)
)

// Open connects and checks the connection with a PING.
func Open(ctx context.Context, o Options) (*Store, error) {
	switch {
	case len(o.Addrs) == 0:
		return nil, errors.New("redis store: no address")
	case !o.Cluster && len(o.Addrs) > 1:
		return nil, fmt.Errorf("redis store: %d addresses need cluster mode", len(o.Addrs))
	case o.Cluster && o.DB != 0:
		return nil, fmt.Errorf("redis store: db %d: Redis Cluster has only db 0", o.DB)
	case strings.ContainsAny(o.KeyPrefix, "{}"):
		return nil, fmt.Errorf("redis store: key prefix %q contains '{' or '}'", o.KeyPrefix)
	}
	s := &Store{prefix: o.KeyPrefix, now: o.Now, log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.prefix == "" {
		s.prefix = DefaultKeyPrefix
	}
	if s.now == nil {
		s.now = time.Now
	}
	uo := &redis.UniversalOptions{
		Addrs: o.Addrs, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout,
		ContextTimeoutEnabled: true,
		// Maintenance notifications are a Redis Cloud feature; asking an
		// open-source server for them only costs a failed handshake.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if o.Cluster {
		s.cluster = redis.NewClusterClient(uo.Cluster())
		s.rdb = s.cluster
	} else {
		s.rdb = redis.NewClient(uo.Simple())
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.rdb.Close()
		return nil, fmt.Errorf("redis store: ping %s: %w", strings.Join(o.Addrs, ","), err)
	}
	return s, nil
}

// Close implements ratelimit.Store.
func (s *Store) Close() error {
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func i64(n int64) string { return strconv.FormatInt(n, 10) }

var graceMS = i64(grace.Milliseconds())

// Reserve implements ratelimit.Store.
func (s *Store) Reserve(ctx context.Context, l ratelimit.Lease, holds []ratelimit.Hold) (ratelimit.ReserveResult, error) {
	res := ratelimit.ReserveResult{Refused: -1, Counters: make([]ratelimit.Counter, len(holds))}
	if len(holds) == 0 {
		return res, nil
	}
	for i := range holds {
		if holds[i].Amount < 0 {
			return ratelimit.ReserveResult{}, fmt.Errorf("reserve lease %q: hold %d: negative amount %d", l.ID, i, holds[i].Amount)
		}
	}
	p := s.plan(holds)
	now := s.now()
	for g := range p.groupCount() {
		idx, keys := p.group(g)
		args := make([]any, 0, 4+7*len(idx))
		args = append(args, ms(now), l.ID, ms(l.Expires), graceMS)
		for _, i := range idx {
			h := &holds[i]
			args = append(args, p.pos[p.famOf[i]], ms(h.ID.Start), ms(h.From()), i64(h.Limit), i64(h.Amount), i64(-h.Amount), ms(h.End))
		}
		reply, err := reserveScript.Run(ctx, s.rdb, keys, args...).Result()
		if err != nil {
			// The script may have run before the error: release this group too.
			return ratelimit.ReserveResult{}, s.undo(ctx, l, p, g+1, fmt.Errorf("reserve lease %q: %w", l.ID, err))
		}
		r, err := decodeReserve(reply, len(idx))
		if err != nil {
			return ratelimit.ReserveResult{}, s.undo(ctx, l, p, g+1, fmt.Errorf("reserve lease %q: %w", l.ID, err))
		}
		for j, c := range r.counters {
			res.Counters[idx[j]] = c
		}
		switch r.status {
		case reserveDuplicate:
			return ratelimit.ReserveResult{}, s.undo(ctx, l, p, g, fmt.Errorf("reserve lease %q: the lease is already held", l.ID))
		case reserveRefused:
			res.Refused = idx[r.refused]
			// The groups reserved so far report counters before, as the
			// contract asks of a refusal.
			for _, i := range p.before(g) {
				res.Counters[i].Reserved -= holds[i].Amount
			}
			if err := s.undo(ctx, l, p, g, nil); err != nil {
				// The answer is still a refusal: an error would let a
				// fail-open budget admit the request.
				s.log.Warn("redis store: refused reservation left partly held", "err", err)
			}
			return res, nil
		}
	}
	return res, nil
}

// undo releases lease l in the first n groups of p, after cause (nil for a
// refusal). It runs even when ctx is done: an undone hold would otherwise
// stay until the lease expires.
func (s *Store) undo(ctx context.Context, l ratelimit.Lease, p *plan, n int, cause error) error {
	if n == 0 {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	var errs []error
	for g := range n {
		if err := s.settleGroup(ctx, l, p, g, nil, nil); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return cause
	}
	err := fmt.Errorf("release partial reservation of lease %q (it expires at %s): %w",
		l.ID, l.Expires.UTC().Format(time.RFC3339), errors.Join(errs...))
	if cause == nil {
		return err
	}
	return errors.Join(cause, err)
}

// Settle implements ratelimit.Store.
func (s *Store) Settle(ctx context.Context, l ratelimit.Lease, holds []ratelimit.Hold, actual []int64) error {
	if actual != nil && len(actual) != len(holds) {
		return fmt.Errorf("settle lease %q: %d actual amounts for %d holds", l.ID, len(actual), len(holds))
	}
	if len(holds) == 0 {
		return nil
	}
	p := s.plan(holds)
	var errs []error
	for g := range p.groupCount() {
		if err := s.settleGroup(ctx, l, p, g, holds, actual); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("settle lease %q: %w", l.ID, errors.Join(errs...))
	}
	return nil
}

// settleGroup releases l's holds in group g and charges actual (nil: none).
func (s *Store) settleGroup(ctx context.Context, l ratelimit.Lease, p *plan, g int, holds []ratelimit.Hold, actual []int64) error {
	idx, keys := p.group(g)
	args := make([]any, 0, 3+4*len(idx))
	args = append(args, ms(s.now()), l.ID, graceMS)
	for _, i := range idx {
		if actual == nil || actual[i] == 0 {
			continue
		}
		h := &holds[i]
		args = append(args, p.pos[p.famOf[i]], ms(h.ID.Start), i64(actual[i]), ms(h.End))
	}
	err := settleScript.Run(ctx, s.rdb, keys, args...).Err()
	if err != nil && s.cluster != nil {
		return fmt.Errorf("slot %d: %w", p.slots[g], err)
	}
	return err
}

// Get implements ratelimit.Store.
func (s *Store) Get(ctx context.Context, h ratelimit.Hold) (ratelimit.Counter, error) {
	f := s.family(h.ID.Budget, h.ID.Key)
	reply, err := getScript.Run(ctx, s.rdb, f.keys[:], ms(s.now()), ms(h.ID.Start), ms(h.From())).Result()
	if err != nil {
		return ratelimit.Counter{}, fmt.Errorf("get counter %s/%s: %w", h.ID.Budget, h.ID.Key, err)
	}
	n, err := ints(reply, 4)
	if err != nil {
		return ratelimit.Counter{}, fmt.Errorf("get counter %s/%s: %w", h.ID.Budget, h.ID.Key, err)
	}
	return ratelimit.Counter{Spent: join(n[0], n[1]), Reserved: join(n[2], n[3])}, nil
}
