package helm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
	corev1 "k8s.io/api/core/v1"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
)

// The variables the chart hands the ledger's secrets in.
const (
	ledgerDSNEnv            = "TOKENMETER_LEDGER_DSN"
	cloudEventsURLEnv       = "TOKENMETER_CLOUDEVENTS_URL"
	cloudEventsHeaderPrefix = "TOKENMETER_CLOUDEVENTS_HEADER_"
)

// checkLedger: a Postgres ledger reads its DSN from the pod's variable and
// spools on the pod's volume; CloudEvents go to the URL in the pod's variable
// with each header from its own; the user's other keys of both sections
// survive the chart's merge; a variant that wires neither gets neither.
func checkLedger(t *testing.T, in install, cfg *config.Config) {
	l := cfg.Ledger
	dsn := env(in.container, ledgerDSNEnv)
	if !in.v.postgres {
		if l.Type != "badger" || l.Postgres.DSNEnv != "" || dsn != nil {
			t.Errorf("ledger: type %q, dsn_env %q, env %+v; want badger and no DSN", l.Type, l.Postgres.DSNEnv, dsn)
		}
	} else {
		switch {
		case l.Type != "postgres":
			t.Errorf("ledger.type %q, want postgres", l.Type)
		case dsn == nil || l.Postgres.DSNEnv != ledgerDSNEnv || l.Postgres.DSN != secretValue(in, *dsn):
			t.Errorf("ledger.postgres: dsn_env %q, DSN read %v; want the pod's %s", l.Postgres.DSNEnv,
				l.Postgres.DSN != "", ledgerDSNEnv)
		case l.Postgres.SpoolDir != dataMount+"/ledger/spool":
			// Anywhere else is the read-only root, or gone with the container.
			t.Errorf("ledger.postgres.spool_dir %q, want it on the pod's volume at %s/ledger/spool",
				l.Postgres.SpoolDir, dataMount)
		}
	}
	checkCloudEvents(t, in, cfg.Ledger.CloudEvents)
	if in.v.userLedgerKeys {
		// testdata/postgres-ledger.yaml's own keys, beside the chart's.
		got := []int64{l.Postgres.MaxConns, l.Postgres.SpoolMaxMB, l.CloudEvents.BatchSize}
		if want := []int64{8, 512, 50}; !slices.Equal(got, want) || l.CloudEvents.Subject != "team" {
			t.Errorf("the config's max_conns, spool_max_mb, batch_size %v and subject %q, want %v and team",
				got, l.CloudEvents.Subject, want)
		}
	}
}

// checkCloudEvents: the sender is on exactly when the variant gives it a
// URL, and sends the headers the values name with the pod's values.
func checkCloudEvents(t *testing.T, in install, ce *config.CloudEvents) {
	url := env(in.container, cloudEventsURLEnv)
	if in.v.cloudEvents == nil {
		if ce != nil || url != nil {
			t.Errorf("cloudevents: config %+v, env %+v; want neither", ce, url)
		}
		return
	}
	if ce == nil || url == nil {
		t.Errorf("cloudevents: config %+v, env %+v; want both", ce, url)
		return
	}
	if ce.URL != secretValue(in, *url) {
		t.Errorf("cloudevents: the URL read is not the pod's %s", cloudEventsURLEnv)
	}
	if got := slices.Sorted(maps.Keys(ce.Headers)); !slices.Equal(got, in.v.cloudEvents) {
		t.Errorf("cloudevents headers %q, want %q", got, in.v.cloudEvents)
	}
	for _, h := range in.v.cloudEvents {
		name := cloudEventsHeaderPrefix + strings.ToUpper(strings.ReplaceAll(h, "-", "_"))
		e := env(in.container, name)
		if e == nil || ce.Headers[h] != secretValue(in, *e) {
			t.Errorf("cloudevents header %s: want the value of the pod's %s (env %+v)", h, name, e)
		}
	}
}

// env is the container's variable called name; nil if it has none.
func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// TestSpoolFitsItsEmptyDir: with the Deployment, a Postgres ledger's spool
// must stay under the emptyDir's sizeLimit, or the kubelet evicts the pod,
// spool and all, while Postgres is away; the chart refuses a bound that does
// not fit, reading the limit as Kubernetes does (binary and decimal
// suffixes, fractions, bare bytes).
func TestSpoolFitsItsEmptyDir(t *testing.T) {
	c := loadChart(t)
	base, err := readValues("../kubernetes/shared.values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		sizeLimit any
		spoolMB   int64 // 0: unset, tokenmeter's default (pgstore.DefaultSpoolMaxBytes)
		ok        bool
	}{
		{"the defaults", "2Gi", 0, true},
		{"the default spool in as many bytes", fmt.Sprint(pgstore.DefaultSpoolMaxBytes), 0, false},
		{"the default spool in one byte more", fmt.Sprint(pgstore.DefaultSpoolMaxBytes + 1), 0, true},
		{"the default spool, bare bytes", pgstore.DefaultSpoolMaxBytes, 0, false},
		{"bare bytes, one more", pgstore.DefaultSpoolMaxBytes + 1, 0, true},
		{"bare bytes as a values file gives them", float64(pgstore.DefaultSpoolMaxBytes), 0, false},
		{"1Gi", "1Gi", 0, false},
		{"a larger spool", "2Gi", 4096, false},
		{"decimal G, just under", "4G", 3814, true}, // 3814 MiB = 3.9993 GB
		{"decimal G, just over", "4G", 3815, false},
		{"a fraction", "1.5Gi", 1535, true},
		{"a fraction, equal", "1.5Gi", 1536, false},
		{"Mi", "600Mi", 599, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pg := map[string]any{}
			wantMB := tc.spoolMB
			if tc.spoolMB != 0 {
				pg["spool_max_mb"] = tc.spoolMB
			} else {
				wantMB = pgstore.DefaultSpoolMaxBytes >> 20
			}
			vals := loader.MergeMaps(base, map[string]any{
				"ledger": map[string]any{"type": "postgres", "sizeLimit": tc.sizeLimit,
					"postgres": map[string]any{"value": "postgres://tokenmeter@db/ledger"}},
				"config": map[string]any{"ledger": map[string]any{"postgres": pg}},
			})
			_, err := renderValues(c, vals)
			want := fmt.Sprintf("ledger.sizeLimit %v: the emptyDir holding the Postgres spool (%d MiB", tc.sizeLimit, wantMB)
			switch {
			case tc.ok && err != nil:
				t.Errorf("refused: %v", err)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), want)):
				t.Errorf("got %v, want an error containing %q", err, want)
			}
		})
	}
}
