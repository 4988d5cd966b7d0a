package apikey

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
)

// API serves admin.Keys over a Registry, as budgets.API serves the budget
// calls: apikey knows admin's shapes, admin knows nothing of apikey.
//
// A nil Registry (attribution.api_keys not configured) answers every call
// with ErrDisabled, which the admin API turns into a 404 that says so,
// rather than the bare 404 of a route that does not exist.
type API struct {
	Registry *Registry
}

var _ admin.Keys = (*API)(nil)

// List implements admin.Keys: every key, by id.
func (a *API) List(context.Context) ([]admin.KeyInfo, error) {
	if a.Registry == nil {
		return nil, toAdmin(ErrDisabled)
	}
	now := a.Registry.now()
	keys := a.Registry.Table().Keys()
	out := make([]admin.KeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, info(k, now))
	}
	return out, nil
}

// Get implements admin.Keys.
func (a *API) Get(_ context.Context, id string) (admin.KeyInfo, error) {
	if a.Registry == nil {
		return admin.KeyInfo{}, toAdmin(ErrDisabled)
	}
	k := a.Registry.Table().Get(id)
	if k == nil {
		return admin.KeyInfo{}, toAdmin(fmt.Errorf("%w: %q", ErrNotFound, id))
	}
	return info(k, a.Registry.now()), nil
}

// Create implements admin.Keys.
func (a *API) Create(ctx context.Context, id, name string, dims map[string]string) (admin.KeyInfo, string, error) {
	if a.Registry == nil {
		return admin.KeyInfo{}, "", toAdmin(ErrDisabled)
	}
	k, secret, err := a.Registry.Create(ctx, id, name, dims)
	if err != nil {
		return admin.KeyInfo{}, "", toAdmin(err)
	}
	return info(&k, a.Registry.now()), secret, nil
}

// Revoke implements admin.Keys.
func (a *API) Revoke(ctx context.Context, id string) (admin.KeyInfo, error) {
	if a.Registry == nil {
		return admin.KeyInfo{}, toAdmin(ErrDisabled)
	}
	k, err := a.Registry.Revoke(ctx, id)
	if err != nil {
		return admin.KeyInfo{}, toAdmin(err)
	}
	return info(&k, a.Registry.now()), nil
}

// Rotate implements admin.Keys.
func (a *API) Rotate(ctx context.Context, id string, grace time.Duration) (admin.KeyInfo, string, error) {
	if a.Registry == nil {
		return admin.KeyInfo{}, "", toAdmin(ErrDisabled)
	}
	k, secret, err := a.Registry.Rotate(ctx, id, grace)
	if err != nil {
		return admin.KeyInfo{}, "", toAdmin(err)
	}
	return info(&k, a.Registry.now()), secret, nil
}

// info is what the API shows of k at now: how many secrets open it and
// until when, never the digests.
func info(k *Key, now time.Time) admin.KeyInfo {
	ki := admin.KeyInfo{ID: k.ID, Name: k.Name, Dimensions: maps.Clone(k.Dimensions), Source: k.Source,
		Created: k.Created, Revoked: k.Revoked, Status: admin.KeyActive}
	if ki.Dimensions == nil {
		ki.Dimensions = map[string]string{}
	}
	if !k.Revoked.IsZero() && !now.Before(k.Revoked) {
		// A revoked key's secrets open nothing, whatever their Until says.
		ki.Status = admin.KeyRevoked
		return ki
	}
	for _, s := range k.Secrets {
		switch {
		case s.Until.IsZero():
			ki.Secrets.Open++
		case now.Before(s.Until):
			ki.Secrets.Open++
			ki.Secrets.Until = append(ki.Secrets.Until, s.Until.UTC())
		}
	}
	return ki
}

// adminErrors maps the registry's errors to the admin API's.
var adminErrors = []struct{ from, to error }{
	{ErrInvalid, admin.ErrKeyInvalid},
	{ErrNotFound, admin.ErrKeyNotFound},
	{ErrConflict, admin.ErrKeyConflict},
	{ErrNoRecords, admin.ErrNoRecords},
	{ErrDisabled, admin.ErrKeysOff},
}

// toAdmin makes err one the admin API maps to its status, keeping err's
// message: wrapping both with fmt.Errorf would say "invalid key" twice.
func toAdmin(err error) error {
	for _, m := range adminErrors {
		if errors.Is(err, m.from) {
			return mappedError{err: err, as: m.to}
		}
	}
	return err
}

type mappedError struct{ err, as error }

func (e mappedError) Error() string   { return e.err.Error() }
func (e mappedError) Unwrap() []error { return []error{e.err, e.as} }
