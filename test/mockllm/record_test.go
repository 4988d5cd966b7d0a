package mockllm_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

func TestRequestsRecording(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		chunked  bool // send without a Content-Length
		wantCL   int64
		wantCode int
	}{
		{name: "completion", method: "POST", path: "/v1/chat/completions", body: chatBody(`"stream":true,"stream_options":{"include_usage":true}`), wantCL: int64(len(chatBody(`"stream":true,"stream_options":{"include_usage":true}`))), wantCode: 200},
		{name: "chunked body", method: "POST", path: "/v1/chat/completions", body: chatBody(""), chunked: true, wantCL: -1, wantCode: 200},
		{name: "invalid JSON is recorded too", method: "POST", path: "/v1/chat/completions", body: "{", wantCL: 1, wantCode: 400},
		{name: "unknown route", method: "GET", path: "/nope", wantCL: 0, wantCode: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, base := newServer(t, mockllm.Options{})
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length from net/http
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, base+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer sk-test")
			req.Header.Set("X-Mock-Completion-Tokens", "2")
			resp, err := rawClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantCode)
			}

			got := s.Requests()
			if len(got) != 1 {
				t.Fatalf("%d recorded, want 1", len(got))
			}
			r := got[0]
			if r.Method != tc.method || r.Path != tc.path || string(r.Body) != tc.body || r.ContentLength != tc.wantCL {
				t.Errorf("recorded %s %s CL=%d body %q; want %s %s CL=%d body %q",
					r.Method, r.Path, r.ContentLength, r.Body, tc.method, tc.path, tc.wantCL, tc.body)
			}
			if r.Header.Get("Authorization") != "Bearer sk-test" || r.Header.Get("X-Mock-Completion-Tokens") != "2" {
				t.Errorf("recorded header %v", r.Header)
			}
		})
	}
}

func TestRequestsIsACopy(t *testing.T) {
	s, base := newServer(t, mockllm.Options{})
	post(t, base, chatBody(""), map[string]string{"X-Test": "a"})
	first := s.Requests()
	first[0].Body[0] = 'X'
	first[0].Header.Set("X-Test", "changed")
	again := s.Requests()[0]
	if string(again.Body) != chatBody("") || again.Header.Get("X-Test") != "a" {
		t.Errorf("recorded request was modified through Requests(): %q %v", again.Body, again.Header)
	}
}

func TestRequestsKeepsTheLast100(t *testing.T) {
	s, base := newServer(t, mockllm.Options{})
	for i := range 105 {
		do(t, "GET", fmt.Sprintf("%s/r/%d", base, i), "", nil)
	}
	got := s.Requests()
	if len(got) != 100 {
		t.Fatalf("%d recorded, want 100", len(got))
	}
	if got[0].Path != "/r/5" || got[99].Path != "/r/104" {
		t.Errorf("kept %s..%s, want /r/5../r/104", got[0].Path, got[99].Path)
	}
	s.Reset()
	if n := len(s.Requests()); n != 0 {
		t.Errorf("%d recorded after Reset", n)
	}
	do(t, "GET", base+"/healthz", "", nil)
	if got := s.Requests(); len(got) != 1 || got[0].Path != "/healthz" {
		t.Errorf("after Reset and one request: %+v", got)
	}
}

// TestConcurrentUse is for the race detector: requests, Requests and Reset
// all at once.
func TestConcurrentUse(t *testing.T) {
	s, base := newServer(t, mockllm.Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				extra := ""
				if i%2 == 0 {
					extra = `"stream":true`
				}
				// Not post(): t.Fatal must not be called off the test goroutine.
				resp, err := rawClient.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(chatBody(extra)))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				_ = s.Requests()
				if i == 0 {
					s.Reset()
				}
			}
		})
	}
	wg.Wait()
	if n := len(s.Requests()); n > 100 {
		t.Errorf("%d recorded", n)
	}
}
