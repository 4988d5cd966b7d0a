package config

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/webhook"
)

// Reloader watches a config file and the catalogs it names, and loads a new
// Config when any of them changes. A file that fails to load, or a change
// that only a restart can apply, keeps the current Config: Apply is not
// called and Fail says why (file, key, value and reason).
type Reloader struct {
	Path  string
	Apply func(*Config)    // called with each new, valid Config
	Fail  func(err error)  // called when a change cannot be applied
	cur   *Config          // the Config in force
	stamp map[string]stamp // what the watched files looked like when cur was loaded
}

// stamp is what a watched file looked like. os.Stat follows symlinks, so a
// file in a Kubernetes ConfigMap volume (tokenmeter.yaml -> ..data/... ->
// ..<timestamp>/tokenmeter.yaml) is stamped by the file its path resolves
// to now, not by a symlink's own mtime nor an inode kept from before. The
// kubelet's update resolves the path to a new file, whose size and mtime may
// equal the old one's (same length, written within one tick of the
// filesystem's clock): its identity (device and inode, os.SameFile) is
// what tells them apart. An editor that saves in place keeps the identity
// and changes the mtime; one that renames a new file over the old changes
// the identity.
type stamp struct {
	info os.FileInfo
	mod  time.Time
	size int64
}

// NewReloader starts from cur, the Config in force.
func NewReloader(cur *Config, apply func(*Config), fail func(error)) *Reloader {
	r := &Reloader{Path: cur.File, Apply: apply, Fail: fail, cur: cur}
	r.stamp = r.stamps(cur)
	return r
}

func (r *Reloader) stamps(c *Config) map[string]stamp {
	files := append(append([]string{r.Path}, c.CatalogFiles...), c.RatesFiles...)
	out := make(map[string]stamp, len(files))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			out[f] = stamp{fi, fi.ModTime(), fi.Size()}
		}
	}
	return out
}

// Check reloads when a watched file changed since the last load (or when
// force is set, for SIGHUP). It reports whether a new Config was applied.
func (r *Reloader) Check(force bool) bool {
	now := r.stamps(r.cur)
	if !force && mapsEqual(now, r.stamp) {
		return false
	}
	next, err := Load(r.Path)
	if err == nil {
		err = restartOnly(r.cur, next)
	}
	// Remember what was seen even on failure, so a broken file is reported
	// once, not on every poll; fixing it is a new change.
	r.stamp = now
	if err != nil {
		r.Fail(err)
		return false
	}
	r.cur = next
	// The files next names, stamped as they were before Load read them: a
	// file replaced while it loaded then differs at the next poll and is
	// read again, instead of its new stamp hiding the change. Only a file
	// the new config names for the first time is stamped after the load.
	r.stamp = r.stamps(next)
	for f, st := range now {
		if _, ok := r.stamp[f]; ok {
			r.stamp[f] = st
		}
	}
	r.Apply(next)
	return true
}

func mapsEqual(a, b map[string]stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !os.SameFile(v.info, w.info) || !w.mod.Equal(v.mod) || w.size != v.size {
			return false
		}
	}
	return true
}

// restartOnly refuses changes a running process cannot apply: its listeners
// are bound, its store is open, and dimensions are metric label names.
func restartOnly(cur, next *Config) error {
	var what []string
	if cur.GRPCListen != next.GRPCListen {
		what = append(what, "listen.grpc")
	}
	if cur.AdminListen != next.AdminListen {
		what = append(what, "listen.admin")
	}
	if cur.StoreDir != next.StoreDir {
		what = append(what, "store.dir")
	}
	what = append(what, ledgerRestartOnly(cur.Ledger, next.Ledger)...)
	if !reflect.DeepEqual(cur.Alerts.Anomaly, next.Alerts.Anomaly) || cur.Alerts.ForecastInterval != next.Alerts.ForecastInterval {
		what = append(what, "alerts.anomaly/forecast_interval")
	}
	if cur.StoreType != next.StoreType || !reflect.DeepEqual(cur.Redis, next.Redis) {
		what = append(what, "store.type/redis")
	}
	if cur.MaxMessageBytes != next.MaxMessageBytes {
		what = append(what, "extproc.max_message_bytes")
	}
	if cur.AdminToken != next.AdminToken {
		what = append(what, "admin.token_env")
	}
	if !slices.EqualFunc(cur.Alerts.Webhooks, next.Alerts.Webhooks, func(a, b webhook.Target) bool {
		return a.Name == b.Name && a.URL == b.URL && a.Format == b.Format && maps.Equal(a.Headers, b.Headers)
	}) {
		what = append(what, "alerts.webhooks")
	}
	if cur.Alerts.Interval != next.Alerts.Interval {
		what = append(what, "alerts.interval")
	}
	if !reflect.DeepEqual(cur.Dimensions, next.Dimensions) {
		what = append(what, "attribution.dimensions")
	}
	if (cur.APIKeys == nil) != (next.APIKeys == nil) || (cur.APIKeys != nil && !bytes.Equal(cur.APIKeys.Secret, next.APIKeys.Secret)) {
		// The key table's digests are made with the secret: a new one
		// would orphan every stored key, so it takes a restart (and a
		// re-issue of keys) on purpose.
		what = append(what, "attribution.api_keys (on/off, secret_env)")
	}
	if !reflect.DeepEqual(cur.Metrics, next.Metrics) {
		what = append(what, "metrics")
	}
	if len(what) > 0 {
		return fmt.Errorf("%s: %v changed: restart tokenmeter to apply them; keeping the running config", next.File, what)
	}
	return nil
}

// Run checks every interval, and at once whenever hup receives (SIGHUP),
// until ctx ends.
func (r *Reloader) Run(ctx context.Context, interval time.Duration, hup <-chan os.Signal) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.Check(false)
		case <-hup:
			r.Check(true)
		}
	}
}

// ledgerRestartOnly names the ledger's changes a running process cannot
// apply: the store is open, and the CloudEvents sender's queue cannot be
// handed to another endpoint without losing or repeating events.
func ledgerRestartOnly(cur, next Ledger) []string {
	var what []string
	if !sameLedger(cur, next) {
		what = append(what, "ledger")
	}
	if !reflect.DeepEqual(cur.CloudEvents, next.CloudEvents) {
		what = append(what, "ledger.cloudevents")
	}
	return what
}

// sameLedger reports whether a reload leaves the ledger as it was opened:
// every key of the section is read at start only.
func sameLedger(a, b Ledger) bool {
	return a.Dir == b.Dir && a.QueueSize == b.QueueSize && a.Retention == b.Retention &&
		a.TimeZone.String() == b.TimeZone.String() && a.Type == b.Type && a.Postgres == b.Postgres
}
