package otelmetrics

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// The GenAI semantic conventions followed are those of semantic-conventions
// v1.41.0, the last release that carried them before they moved to their
// own repository (semantic-conventions-genai, unchanged for these
// instruments since): gen_ai.provider.name, which replaced gen_ai.system in
// v1.37.0, not the older attribute. The names, units and well-known values
// come from the OpenTelemetry Go module's generated semconv package rather
// than being typed here.

// Bucket boundaries the conventions ask for (ExplicitBucketBoundaries):
// tokens in powers of four, seconds doubling from 10 ms.
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
)

// tokenmeter's own attribute keys, beside the conventions' ones. Dimension
// attributes are DimensionPrefix + the dimension's name, so that a
// dimension called "outcome" or "currency" cannot collide with these.
const (
	OutcomeKey      = attribute.Key("tokenmeter.outcome")
	ClassKey        = attribute.Key("tokenmeter.token.class")
	UnitKey         = attribute.Key("tokenmeter.unit")
	CurrencyKey     = attribute.Key("tokenmeter.currency")
	OverflowKey     = attribute.Key("tokenmeter.attribute")
	DimensionPrefix = "tokenmeter.attribution."
)

// operations maps a dialect to gen_ai.operation.name: a well-known value
// where one applies, else a name of ours (the conventions allow custom
// values). A dialect missing here is exported under its own name, which is
// bounded too (dialect names are a closed set); a test holds every
// registered dialect to this table.
var operations = map[string]string{
	"openai_chat":              semconv.GenAIOperationNameChat.Value.AsString(),
	"openai_responses":         semconv.GenAIOperationNameChat.Value.AsString(),
	"azure_openai_chat":        semconv.GenAIOperationNameChat.Value.AsString(),
	"azure_openai_responses":   semconv.GenAIOperationNameChat.Value.AsString(),
	"anthropic_messages":       semconv.GenAIOperationNameChat.Value.AsString(),
	"bedrock_converse":         semconv.GenAIOperationNameChat.Value.AsString(),
	"bedrock_converse_stream":  semconv.GenAIOperationNameChat.Value.AsString(),
	"bedrock_invoke":           semconv.GenAIOperationNameChat.Value.AsString(),
	"bedrock_invoke_stream":    semconv.GenAIOperationNameChat.Value.AsString(),
	"cohere_chat":              semconv.GenAIOperationNameChat.Value.AsString(),
	"cohere_chat_v1":           semconv.GenAIOperationNameChat.Value.AsString(),
	"ollama_chat":              semconv.GenAIOperationNameChat.Value.AsString(),
	"openai_completions":       semconv.GenAIOperationNameTextCompletion.Value.AsString(),
	"azure_openai_completions": semconv.GenAIOperationNameTextCompletion.Value.AsString(),
	"ollama_generate":          semconv.GenAIOperationNameTextCompletion.Value.AsString(),
	"openai_embeddings":        semconv.GenAIOperationNameEmbeddings.Value.AsString(),
	"azure_openai_embeddings":  semconv.GenAIOperationNameEmbeddings.Value.AsString(),
	"gemini":                   semconv.GenAIOperationNameGenerateContent.Value.AsString(),
	"vertex_gemini":            semconv.GenAIOperationNameGenerateContent.Value.AsString(),
	// No well-known value covers these; ours name what the API does.
	"openai_images": "generate_image",
	"openai_audio":  "transcribe_audio",
	"openai_speech": "generate_speech",
}

// noDialect is the operation of a record no dialect read (a path tokenmeter
// does not know): gen_ai.operation.name is required on every point.
const noDialect = "unknown"

func operationName(dialect string) string {
	if op, ok := operations[dialect]; ok {
		return op
	}
	if dialect == "" {
		return noDialect
	}
	return dialect
}

// providers maps tokenmeter's provider names (the dialects' and the config
// routes') to gen_ai.provider.name's well-known values; others, such as
// ollama, are exported as they are: they come from the config, not from
// requests.
var providers = map[string]string{
	"openai":     semconv.GenAIProviderNameOpenAI.Value.AsString(),
	"anthropic":  semconv.GenAIProviderNameAnthropic.Value.AsString(),
	"azure":      semconv.GenAIProviderNameAzureAIOpenAI.Value.AsString(),
	"bedrock":    semconv.GenAIProviderNameAWSBedrock.Value.AsString(),
	"google":     semconv.GenAIProviderNameGCPGemini.Value.AsString(),
	"vertex":     semconv.GenAIProviderNameGCPVertexAI.Value.AsString(),
	"cohere":     semconv.GenAIProviderNameCohere.Value.AsString(),
	"deepseek":   semconv.GenAIProviderNameDeepseek.Value.AsString(),
	"groq":       semconv.GenAIProviderNameGroq.Value.AsString(),
	"mistral":    semconv.GenAIProviderNameMistralAI.Value.AsString(),
	"perplexity": semconv.GenAIProviderNamePerplexity.Value.AsString(),
	"xai":        semconv.GenAIProviderNameXAI.Value.AsString(),
}

func providerName(p string) string {
	if v, ok := providers[p]; ok {
		return v
	}
	return p
}

// isOutput maps tokenmeter's disjoint classes onto gen_ai.token.type,
// which knows only input and output: cache reads and writes are prompt
// tokens, so input; reasoning tokens are generated, so output; audio and
// image tokens follow their direction. The conventions ask for billable
// tokens, which is what the classes count.
func isOutput(c usage.Class) bool {
	switch c {
	case usage.Output, usage.Reasoning, usage.AudioOutput, usage.ImageOutput:
		return true
	}
	return false
}

// errorType is error.type for gen_ai.client.operation.duration: set when
// the operation did not end in a whole answer, to the outcome (a closed
// set, ledger.Outcomes), so a dashboard's error rate needs no second
// vocabulary; empty otherwise. Unmetered traffic still reached its client:
// tokenmeter could not read it, which is not the operation's error.
func errorType(o ledger.Outcome) string {
	switch o {
	case ledger.Denied, ledger.UpstreamError, ledger.GateTimeout, ledger.ProviderError, ledger.Partial:
		return string(o)
	}
	return ""
}
