// Package pricing loads price catalogs, matches a request's model to a
// catalog entry, and prices its usage exactly.
//
// A catalog is a YAML file in the schema of docs/catalog-schema.md (v2):
//
//	currency: USD              # ISO 4217 shape (three upper-case letters); default USD
//	models:
//	  - name: gpt-4o-mini
//	    provider: openai       # optional; qualifies the entry
//	    aliases: [gpt-4o-mini-latest]  # optional extra exact names
//	    match: ["gpt-4o-mini-*"]       # optional globs, * and ? only
//	    source: https://openai.com/api/pricing  # required: where the prices were read
//	    as_of: 2026-11-01      # required: when they were read, YYYY-MM-DD
//	    effective_from: 2026-01-01T00:00:00Z    # optional: in force from this instant
//	    prices:                # per million tokens, in the catalog currency
//	      input: 0.15          # required
//	      cache_read: 0.075    # optional; defaults to input
//	      output: 0.60         # required
//	    service_tiers:
//	      batch: {multiplier: 0.5}
//
// Every price is read from the text of its YAML scalar by money.Parse, never
// through float64, so "0.075" is 75 nano-units per token exactly. A price has
// at most 9 decimals and no exponent; quoting it ("0.15") is allowed.
//
// An omitted optional price is not guessed low: reasoning tokens cost the
// output price and the three cache classes cost the full input price. Billing
// a class at the dearer rate the provider publishes for the same tokens never
// under-charges silently; a catalog that wants the discount writes it down.
// The same holds inside context and service tiers: a class the file never
// prices follows its source at the tier's price (reasoning follows the tier's
// output), while a class the file does price keeps it where a tier is silent.
//
// Loading rejects, with file, line, key, value and reason (see cfgerr), every
// unknown key, every price that is negative or not a plain decimal, a
// malformed currency or effective_from, a missing name, source or as_of, a
// prices block without input or output, a name, alias or glob of two models,
// two versions of a model from the same instant, a glob with wildcards other
// than * and ?, two globs that are ambiguous (see glob.go), context tiers out
// of ascending order, a service tier other than batch, flex and priority, and
// a multiplier that is not above zero. It reports all problems of a load at
// once.
//
// Catalog.Lookup matches exact names, then dated snapshots, then globs, each
// among the versions in force when the request started; Entry.Cost prices one
// request's tokens and units, with its context and service tier, rounded once.
// Anything unmatched or unpriceable is reported as such: the caller records
// the request as unpriced rather than pricing it at zero.
package pricing
