package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// openKeys builds the API key registry when attribution.api_keys is set
// (nil otherwise): the file's keys, and the runtime ones read from the
// store.
func openKeys(ctx context.Context, cfg *config.Config, records ratelimit.Records, log *slog.Logger) (*apikey.Registry, error) {
	if cfg.APIKeys == nil {
		return nil, nil
	}
	reg, err := apikey.NewRegistry(cfg.APIKeys.Secret, records, log, time.Now)
	if err != nil {
		return nil, fmt.Errorf("attribution.api_keys: %w", err)
	}
	configureKeys(reg, cfg)
	if _, err := reg.Refresh(ctx); err != nil {
		return nil, err
	}
	return reg, nil
}

// configureKeys installs cfg's key table (a reload may change it).
func configureKeys(reg *apikey.Registry, cfg *config.Config) {
	if reg != nil && cfg.APIKeys != nil {
		reg.Configure(cfg.APIKeys.Keys, attribution.KeyFields(cfg.Dimensions))
	}
}
