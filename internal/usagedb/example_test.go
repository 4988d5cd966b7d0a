package usagedb_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

func Example() {
	ctx := context.Background()
	dims := []string{"project"}
	db, err := usagedb.Open(usagedb.Options{InMemory: true, Dimensions: dims})
	if err != nil {
		panic(err)
	}
	defer db.Close()

	start := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	for i, project := range []string{"search", "search", "chat"} {
		r := &ledger.Record{
			RequestID: fmt.Sprintf("req-%d", i), Start: start.Add(time.Duration(i) * 20 * time.Hour),
			Dimensions: attribution.Dimensions{Names: dims, Values: []string{project}},
			Provider:   "openai", Dialect: "openai_chat", Model: "gpt-4o", PricedModel: "gpt-4o",
			Priced: true, Cost: money.MustParse("0.0125"), ListCost: money.MustParse("0.0125"), Currency: money.USD,
			Outcome: ledger.OK,
		}
		r.Usage.Set(usage.Input, 1000)
		r.Usage.Set(usage.Output, 1000)
		db.Append(r) // never blocks: queued for the writer
	}
	if err := db.Flush(ctx); err != nil {
		panic(err)
	}

	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rows, err := db.Report(ctx, usagedb.Query{
		From: march, To: march.AddDate(0, 1, 0), GroupBy: []string{"project"}, Bucket: usagedb.Day,
	})
	if err != nil {
		panic(err)
	}
	for _, r := range rows {
		fmt.Println(r.Bucket.Format(time.DateOnly), r.Group, r.Requests, r.Tokens[usage.Output], r.Cost, r.Currency)
	}

	sts, err := usagedb.Statements(ctx, db, march, "project", "search", nil)
	if err != nil {
		panic(err)
	}
	for _, s := range sts {
		fmt.Println(s.Month.Format("2006-01"), s.Value, s.Requests, s.Total, s.Currency)
	}

	_ = usagedb.WriteExport(ctx, db, os.Stdout, usagedb.CSV, march, march.AddDate(0, 0, 2))
	// Output:
	// 2026-03-02 [search] 1 1000 0.0125 USD
	// 2026-03-03 [search] 1 1000 0.0125 USD
	// 2026-03-04 [chat] 1 1000 0.0125 USD
	// 2026-03 search 2 0.025 USD
	// request_id,start,duration_ms,ttft_ms,dim_project,provider,dialect,model,response_model,priced_model,status,stream,outcome,reason,budget,input_tokens,cache_read_tokens,cache_write_tokens,cache_write_1h_tokens,output_tokens,reasoning_tokens,audio_input_tokens,audio_output_tokens,image_input_tokens,image_output_tokens,images,audio_ms,characters,image_size,image_quality,estimated,list_cost,cost,currency,adjustment,reporting_cost,reporting_currency,fx_rate,fx_from,fx_to,fx_effective_from,fx_source,priced,fallback,service_tier,client_request_id
	// req-0,2026-03-02T09:30:00Z,0,0,search,openai,openai_chat,gpt-4o,,gpt-4o,0,false,ok,,,1000,0,0,0,1000,0,0,0,0,0,0,0,0,,,,0.0125,0.0125,USD,,0,,,,,,,true,false,,
}
