package otelmetrics

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

// exactCost sums money exactly (int64 nano-units) per attribute set and
// hands the SDK each total, converted to float64 only then, from an
// observable counter's callback. A synchronous Float64Counter would add
// float64s inside the SDK: a million additions drift, and money is never
// float on its way to export. The totals are cumulative, which is what an
// observable counter reports; the exporter's default (cumulative)
// temporality sends them as they are.
type exactCost struct {
	mu   sync.Mutex
	sums map[attribute.Distinct]*costSum
}

type costSum struct {
	set   attribute.Set
	total money.Amount
}

func newExactCost() *exactCost {
	return &exactCost{sums: map[attribute.Distinct]*costSum{}}
}

func (e *exactCost) add(set attribute.Set, a money.Amount) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sums[set.Equivalent()]
	if !ok {
		s = &costSum{set: set}
		e.sums[set.Equivalent()] = s
	}
	s.total += a
}

// observe is the instrument's callback: it runs at each collection.
func (e *exactCost) observe(_ context.Context, o metric.Float64Observer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sums {
		o.Observe(s.total.Units(), metric.WithAttributeSet(s.set))
	}
	return nil
}
