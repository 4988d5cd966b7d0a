// Package budgets keeps the budgets created at runtime through the admin
// API. A definition is checked against the running config exactly as a
// budget in the config file is, stored in the budget store (so a restart
// keeps it, and replicas sharing Redis share it), and merged after the
// file's budgets into the config the server runs.
//
// Each process reloads the stored definitions on every config check
// (Refresh), so a budget created on one replica applies on the others
// within the reload interval.
package budgets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// kind is the record kind runtime budgets are stored under.
const kind = "budget"

// ErrNoRecords is returned when the store keeps no runtime budgets.
var ErrNoRecords = errors.New("the budget store cannot keep runtime budgets")

// errNameMismatch: a definition whose name is not the one it is put under.
var errNameMismatch = errors.New("name mismatch")

// ErrNotFound is returned for a runtime budget that does not exist.
var ErrNotFound = errors.New("no runtime budget of that name")

// Registry holds the runtime budgets.
type Registry struct {
	store ratelimit.Records
	log   *slog.Logger

	mu   sync.Mutex
	defs map[string]config.RuntimeBudget
	// raw is what the store held at the last refresh: a definition that no
	// longer passes the config (a dimension removed) is kept stored, and
	// reported, rather than deleted.
	raw map[string][]byte
	cfg *config.Config // what defs were checked against
}

// New builds a Registry over store.
func New(store ratelimit.Records, log *slog.Logger) *Registry {
	return &Registry{store: store, log: log, defs: map[string]config.RuntimeBudget{}}
}

// Refresh reads the stored definitions and checks them against cfg. It
// reports whether the set changed. Definitions that fail the check are
// logged and left out (and left in the store).
func (r *Registry) Refresh(ctx context.Context, cfg *config.Config) (bool, error) {
	if r.store == nil {
		return false, nil
	}
	raw, err := r.store.ListRecords(ctx, kind)
	if err != nil {
		return false, fmt.Errorf("runtime budgets: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.raw != nil && r.cfg == cfg && maps.EqualFunc(raw, r.raw, bytes.Equal) {
		return false, nil
	}
	defs := make(map[string]config.RuntimeBudget, len(raw))
	for name, data := range raw {
		rb, err := cfg.ParseBudget("runtime budget "+name, data)
		if err == nil && rb.Budget.Name != name {
			err = fmt.Errorf("stored under %q but named %q", name, rb.Budget.Name)
		}
		if err == nil && cfg.HasFileBudget(name) {
			err = config.ErrBudgetName
		}
		if err != nil {
			r.log.Error("runtime budget left out", "budget", name, "err", err)
			continue
		}
		defs[name] = rb
	}
	changed := r.raw == nil || !maps.EqualFunc(defs, r.defs, func(a, b config.RuntimeBudget) bool { return bytes.Equal(a.Def, b.Def) })
	r.raw, r.defs, r.cfg = raw, defs, cfg
	return changed, nil
}

// Apply returns cfg with the runtime budgets added.
func (r *Registry) Apply(cfg *config.Config) *config.Config {
	return cfg.WithRuntime(r.List())
}

// List returns the runtime budgets, by name.
func (r *Registry) List() []config.RuntimeBudget {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]config.RuntimeBudget, 0, len(r.defs))
	for _, name := range slices.Sorted(maps.Keys(r.defs)) {
		out = append(out, r.defs[name])
	}
	return out
}

// Get returns one runtime budget.
func (r *Registry) Get(name string) (config.RuntimeBudget, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rb, ok := r.defs[name]
	return rb, ok
}

// Put checks def against cfg and stores it as budget name. The definition's
// own name, when given, must be name.
func (r *Registry) Put(ctx context.Context, cfg *config.Config, name string, def []byte) (config.RuntimeBudget, error) {
	if cfg.HasFileBudget(name) {
		return config.RuntimeBudget{}, config.ErrBudgetName
	}
	if r.store == nil {
		return config.RuntimeBudget{}, ErrNoRecords
	}
	rb, err := cfg.ParseBudget("budget "+name, def)
	if err != nil {
		return config.RuntimeBudget{}, err
	}
	if rb.Budget.Name != name {
		return config.RuntimeBudget{}, fmt.Errorf("%w: the definition names budget %q, the path %q", errNameMismatch, rb.Budget.Name, name)
	}
	if err := r.store.PutRecord(ctx, kind, name, def); err != nil {
		return config.RuntimeBudget{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.defs[name] = rb
	if r.raw == nil {
		r.raw = map[string][]byte{}
	}
	r.raw[name] = def
	return rb, nil
}

// Delete removes runtime budget name. Its counters stay until their windows
// end; re-creating it within the window carries on counting.
func (r *Registry) Delete(ctx context.Context, name string) error {
	r.mu.Lock()
	_, ok := r.defs[name]
	r.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	if err := r.store.DeleteRecord(ctx, kind, name); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.defs, name)
	delete(r.raw, name)
	return nil
}
