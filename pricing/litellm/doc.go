// Package litellm converts LiteLLM's model_prices_and_context_window.json
// into a tokenmeter price catalog (docs/catalog-schema.md, schema v2), for
// users who already keep their prices in LiteLLM's format.
//
// # Numbers
//
// LiteLLM writes costs per token as JSON numbers, often with an exponent
// (3e-06). They are decoded as json.Number and scaled on their decimal
// digits, never through float64: 3e-06 per token is exactly 3 per million,
// 1.25e-07 is 0.125. A result with more than 9 decimal places (5e-16 per
// token is 0.0000000005 per million; 0.0002833333 per second) cannot be
// written exactly; it is left out and reported as NotExact, not rounded,
// because a rounded price would misprice every request silently. A chat
// model whose input or output price is left out this way is skipped whole.
//
// One exception: LiteLLM's file is written by Python, and some costs are
// reprs of computed floats, such as 1.6000000000000001e-06. Digits that lie
// within float64 noise of a 9-place decimal (relative difference at most
// 1e-14, some 45 ulps) are not part of any price; such a value is written
// rounded (1.6) and each one is listed in the report.
//
// # Fields
//
//	LiteLLM field                                   catalog
//	input_cost_per_token                            prices.input
//	cache_read_input_token_cost                     prices.cache_read
//	cache_creation_input_token_cost                 prices.cache_write
//	cache_creation_input_token_cost_above_1hr       prices.cache_write_1h
//	output_cost_per_token                           prices.output
//	output_cost_per_reasoning_token                 prices.reasoning
//	input_cost_per_audio_token                      prices.audio_input
//	output_cost_per_audio_token                     prices.audio_output
//	input_cost_per_image_token                      prices.image_input
//	output_cost_per_image_token                     prices.image_output
//	<any of the above>_above_<N>k_tokens            context_tiers[above_input_tokens: N×1000].prices
//	<any of the above>_batches / _flex / _priority  service_tiers.batch / flex / priority .prices
//	input_cost_per_second, else output_cost_per_second (audio_transcription; the
//	reverse for audio_speech)                       units.audio_second
//	input_cost_per_character × 1000                 units.characters_1k (audio_speech)
//	input_cost_per_request, else input_cost_per_query
//	                                                units.request
//	output_cost_per_image, else input_cost_per_image (image modes)
//	                                                units.image.default
//	"[QUALITY/]SIZE/model" entries: output_cost_per_image, else input_cost_per_image,
//	else input_cost_per_pixel × width × height      units.image["SIZE/QUALITY"] of model
//	source                                          source (else DefaultSource + Options.SourceNote)
//	litellm_provider                                provider (see below)
//
// Where LiteLLM has two fields for one unit, the first present in the order
// above is written and the other is reported as Superseded (with a note
// when its price differs): one unit has one rate. Prices written as JSON
// strings ("3e-7") are read as numbers, as LiteLLM's cost code reads them. A price that
// is both context- and service-tiered (input_cost_per_token_above_200k_tokens_priority)
// has no counterpart: the schema's service tiers hold no context tiers.
// Everything else (supports_*, max_*, deprecation_date, output_cost_per_character,
// per-video-second and search prices, ...) has no counterpart and is reported.
//
// Two of LiteLLM's billing rules are written out because the schema's
// defaults differ. Without output_cost_per_reasoning_token, LiteLLM bills
// reasoning at the output price in force, tiered or not; the schema keeps a
// tier's unlisted classes at the base price, so a tier that lists output
// also gets reasoning at that price. And LiteLLM bills image generation by
// tokens when a model has token prices, ignoring its per-image prices; the
// converter then writes no image prices, which would charge twice.
//
// # Modes
//
// chat, completion and responses entries need input and output token
// prices. embedding, moderation, rerank, image_generation, image_edit,
// audio_transcription and audio_speech entries need some price; the input
// and output the schema requires are written as 0 when LiteLLM has none (a
// note says so). Other modes (search, video_generation, ocr, ...) bill what
// tokenmeter does not meter: their entries are skipped as UnsupportedMode.
// An entry without a mode is a chat model, as LiteLLM assumes.
//
// # Providers and names
//
//	litellm_provider                       provider
//	openai, text-completion-openai         openai
//	azure, azure_text                      azure
//	anthropic                              anthropic
//	vertex_ai, vertex_ai-*                 vertex
//	gemini                                 google
//	bedrock, bedrock_converse              bedrock
//	cohere, cohere_chat                    cohere
//	mistral, codestral, text-completion-codestral  mistral
//	ollama, ollama_chat                    ollama
//	anything else (deepseek, groq, xai, azure_ai, openrouter, ...)  itself, lower-cased
//
// A key's leading "provider/" is removed when it names the entry's own
// provider: "azure/gpt-4o" is gpt-4o under azure, "vertex_ai/claude-3-5-sonnet"
// is claude-3-5-sonnet under vertex; the rest of the key stays, so
// "openrouter/anthropic/claude-3.5-sonnet" is "anthropic/claude-3.5-sonnet".
// An entry without litellm_provider is written without a provider. When two
// entries map to the same provider and name (case-insensitively, as the
// catalog matches), the first in the file is kept and the others reported.
//
// The catalog is sorted by provider, then name, and is the same bytes for
// the same input and options.
package litellm
