package budgets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// API serves admin.Budgets over a Registry and the running server.
type API struct {
	Registry *Registry
	// File returns the config file's current config (without runtime budgets).
	File func() *config.Config
	// Limiter returns the limiter in force (with runtime budgets).
	Limiter func() *ratelimit.Limiter
	Store   ratelimit.Store
	// Changed is called after a runtime budget is created, changed or
	// deleted, to rebuild the limiter.
	Changed func()
	// Forecasts returns the latest window-end projections; may be nil.
	Forecasts func() []alerting.Forecast
}

var _ admin.Budgets = (*API)(nil)

// List implements admin.Budgets: every budget in force, the file's first.
func (a *API) List(ctx context.Context) ([]admin.BudgetInfo, error) {
	l := a.Limiter()
	st, err := l.Status(ctx)
	if err != nil {
		return nil, err
	}
	file := a.File()
	projected := map[[2]string]int64{}
	if a.Forecasts != nil {
		for _, f := range a.Forecasts() {
			projected[[2]string{f.Budget, f.Key}] = f.Projected
		}
	}
	out := make([]admin.BudgetInfo, 0, len(l.Budgets()))
	for _, b := range l.Budgets() {
		bi := info(b)
		bi.Source = "config"
		if !file.HasFileBudget(b.Name) {
			bi.Source = "runtime"
			if rb, ok := a.Registry.Get(b.Name); ok && json.Valid(rb.Def) {
				bi.Definition = rb.Def
			}
		}
		for _, s := range st {
			if s.Budget.Name == b.Name {
				ks := keyStatus(b, s)
				if p, ok := projected[[2]string{b.Name, s.Key}]; ok {
					ks.Projected = b.Format(p)
				}
				bi.Keys = append(bi.Keys, ks)
			}
		}
		out = append(out, bi)
	}
	return out, nil
}

// Put implements admin.Budgets.
func (a *API) Put(ctx context.Context, name string, def []byte) (admin.BudgetInfo, error) {
	rb, err := a.Registry.Put(ctx, a.File(), name, def)
	var list cfgerr.List
	switch {
	case errors.Is(err, config.ErrBudgetName):
		return admin.BudgetInfo{}, fmt.Errorf("%w: %q: %w", admin.ErrConflict, name, err)
	case errors.As(err, &list), errors.Is(err, errNameMismatch):
		return admin.BudgetInfo{}, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
	case err != nil: // the store failed
		return admin.BudgetInfo{}, err
	}
	a.Changed()
	bi := info(&rb.Budget)
	bi.Source = "runtime"
	if json.Valid(rb.Def) {
		bi.Definition = rb.Def
	}
	return bi, nil
}

// Delete implements admin.Budgets.
func (a *API) Delete(ctx context.Context, name string) error {
	if a.File().HasFileBudget(name) {
		return fmt.Errorf("%w: %q: %w", admin.ErrConflict, name, config.ErrBudgetName)
	}
	if err := a.Registry.Delete(ctx, name); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %q", admin.ErrNotFound, name)
	} else if err != nil {
		return err
	}
	a.Changed()
	return nil
}

// Reset implements admin.Budgets.
func (a *API) Reset(ctx context.Context, name, key string) error {
	found := false
	for _, b := range a.Limiter().Budgets() {
		found = found || b.Name == name
	}
	if !found {
		return fmt.Errorf("%w: %q", admin.ErrNotFound, name)
	}
	return a.Store.Reset(ctx, name, key)
}

func info(b *ratelimit.Budget) admin.BudgetInfo {
	bi := admin.BudgetInfo{Name: b.Name, Unit: b.Unit.String(), Limit: b.Format(b.Limit), Period: b.Period(), Shadow: b.Shadow,
		AlertAt: b.AlertAt, Keys: []admin.KeyStatus{}}
	if b.Unit == ratelimit.Money {
		bi.Currency = string(b.Currency)
	}
	return bi
}

func keyStatus(b *ratelimit.Budget, s ratelimit.Status) admin.KeyStatus {
	left := s.Limit - s.Counter.Spent - s.Counter.Reserved
	if left < 0 {
		left = 0
	}
	ks := admin.KeyStatus{Key: s.Key, Limit: b.Format(s.Limit), Spent: b.Format(s.Counter.Spent), Reserved: b.Format(s.Counter.Reserved),
		Remaining: b.Format(left), ResetsAt: s.Resets.UTC()}
	for _, pct := range b.AlertAt {
		if !alerting.Reached(s.Counter.Spent, s.Limit, pct) {
			break // ascending: none after this one is reached either
		}
		ks.Crossed = append(ks.Crossed, pct)
	}
	return ks
}
