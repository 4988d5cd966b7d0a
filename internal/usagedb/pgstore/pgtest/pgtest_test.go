package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
)

func TestStartStopRestart(t *testing.T) {
	s := pgtest.StartServer(t)
	ctx := context.Background()
	query := func(dsn string) error {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var n int
		return c.QueryRow(ctx, "SELECT 1").Scan(&n)
	}
	if err := query(s.DSN); err != nil {
		t.Fatal(err)
	}
	db := s.Database(t)
	if err := query(db); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := query(s.DSN); err == nil {
		t.Fatal("a stopped server answered")
	}
	s.Restart()
	if err := query(db); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
