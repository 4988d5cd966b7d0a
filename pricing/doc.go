// Package pricing loads price catalogs, matches a request's model to a
// catalog entry, and prices its usage exactly.
//
// A catalog is a YAML file:
//
//	currency: USD              # ISO 4217 shape (three upper-case letters); default USD
//	models:
//	  - name: gpt-4o-mini
//	    provider: openai       # optional; qualifies the entry
//	    aliases: [gpt-4o-mini-latest]  # optional extra exact names
//	    source: https://openai.com/api/pricing  # required: where the prices were read
//	    as_of: 2026-11-01      # required: when they were read, YYYY-MM-DD
//	    prices:                # per million tokens, in the catalog currency
//	      input: 0.15          # required
//	      cache_read: 0.075    # optional; defaults to input
//	      cache_write: 0.1875  # optional; defaults to input
//	      cache_write_1h: 0.30 # optional; defaults to input
//	      output: 0.60         # required
//	      reasoning: 0.60      # optional; defaults to output
//
//	  - name: gpt-4o-mini      # the same model through Azure, at Azure's price
//	    provider: azure
//	    source: https://azure.microsoft.com/pricing/details/cognitive-services/openai-service/
//	    as_of: 2026-11-01
//	    prices: {input: 0.165, output: 0.66}
//
// Every price is read from the text of its YAML scalar by money.Parse, never
// through float64, so "0.075" is 75 nano-units per token exactly. A price has
// at most 9 decimals and no exponent; quoting it ("0.15") is allowed.
//
// An omitted optional price is not guessed low: reasoning tokens cost the
// output price and the three cache classes cost the full input price. Billing
// a class at the dearer rate the provider publishes for the same tokens never
// under-charges silently; a catalog that wants the discount writes it down.
//
// Loading rejects, with file, line, key, value and reason (see cfgerr), every
// unknown key, every price that is negative or not a plain decimal, a
// malformed currency, a missing name, source or as_of, a prices block without
// input or output, and a name or alias used twice under the same provider. It
// reports all problems of a load at once.
//
// Lookup matches names case-insensitively (ASCII), in this order: the name or
// alias under the given provider; the name or alias of an unqualified entry;
// then, for a dated snapshot such as gpt-4o-2024-08-06 or
// claude-3-5-sonnet-20241022 whose own name is not priced, the same two steps
// without the date. Anything else is not found: the caller records the
// request as unpriced rather than pricing it at zero.
package pricing
