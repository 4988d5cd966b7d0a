package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/webhook"
)

func Example() {
	bodies := make(chan string, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
	}))
	defer hook.Close()

	s := webhook.New(webhook.Options{Targets: []webhook.Target{
		{Name: "ops-channel", URL: hook.URL, Format: webhook.FormatSlack},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()

	a := webhook.Alert{
		Kind: webhook.KindBudgetThreshold, Key: "budget=team-a|key=project=demo|window=2026-11-01T00:00:00Z|threshold=50",
		Budget: "team-a", CounterKey: "project=demo", Threshold: 50,
		Spent: "50000", Limit: "100000", Unit: "tokens",
		WindowStart: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		WindowEnd:   time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	}
	fmt.Println(s.Send(a)) // queued
	fmt.Println(s.Send(a)) // same key: deduplicated
	fmt.Println(<-bodies)

	cancel() // Run gives what is still queued one attempt, then returns
	<-done
	// Output:
	// true
	// false
	// {"text":"[tokenmeter] budget team-a (project=demo): 50% of limit reached; spent 50000 of 100000 tokens; window 2026-11-01T00:00:00Z to 2026-12-01T00:00:00Z"}
}
