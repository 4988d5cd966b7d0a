// Package statement turns a month of the ledger into a document finance can
// sign: lines by provider and model with served, unpriced, denied and failed
// requests in their own columns, a subtotal, each configured tax with its
// rate and base, the total, a statement number, the period with its time
// zone, and the exchange rates in force during the month with their
// sources; rendered as HTML (html/template) and as PDF by headless
// Chromium.
//
// The numbers come from usagedb.StatementsOf, so every store gives the same
// document for the same rows; this package adds no sums of its own beyond
// the taxes and the totals.
//
// # Money
//
// Lines and the subtotal are exact, to the nano-unit, as the ledger holds
// them: they reconcile with a report or an export. Taxes are rounded once
// each, per statement: the base of a tax (the sum of the lines' amounts it
// applies to) times its rate, rounded half away from zero to the currency's
// minor unit (ISO 4217: cents for EUR). Rounding per statement rather than
// per line keeps the tax equal to base × rate as printed, so a reader can
// check it with a calculator, and avoids the up-to-half-a-cent-per-line
// drift that per-line rounding accumulates over hundreds of lines (the EU
// VAT directive, art. 226, lets an invoice state the tax per rate). The
// total is the subtotal plus the taxes, exact; the amount due is the total
// rounded the same way, once.
//
// # Unpriced and denied requests
//
// A denied or failed request is counted, never billed. A served request
// without a catalog price has no cost: its column counts it, and its line
// says that its cost is unknown rather than showing a zero.
package statement
