package statement

import (
	"bytes"
	"os"
	"testing"
)

// sampleCmd regenerates docs/statement-sample.html and .pdf.
const sampleCmd = "TOKENMETER_WRITE_SAMPLE=1 go test -run TestSampleDocument ./internal/statement/"

// docs/statement-sample.html is the sample month's statement as the code
// renders it now; with TOKENMETER_WRITE_SAMPLE=1 the test writes it and its
// PDF (printed by Chromium) instead of comparing.
func TestSampleDocument(t *testing.T) {
	docs, _ := sampleDocuments(t)
	var page bytes.Buffer
	if err := HTML(&page, docs); err != nil {
		t.Fatal(err)
	}
	const htmlFile, pdfFile = "../../docs/statement-sample.html", "../../docs/statement-sample.pdf"
	if os.Getenv("TOKENMETER_WRITE_SAMPLE") != "" {
		pdf, err := PrintPDF(t.Context(), chromium(t), page.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(htmlFile, page.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pdfFile, pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(htmlFile)
	if err != nil || !bytes.Equal(have, page.Bytes()) {
		t.Fatalf("%s is not the sample statement as rendered now (%v); regenerate it: %s", htmlFile, err, sampleCmd)
	}
	if _, err := os.Stat(pdfFile); err != nil {
		t.Fatalf("%v; generate it: %s", err, sampleCmd)
	}
}
