package extproc

import (
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// lookupHeader finds name (lower-case, as Envoy sends it). Envoy puts values
// in raw_value; value is only used by older Envoys.
func lookupHeader(hdrs []*corev3.HeaderValue, name string) (string, bool) {
	for _, h := range hdrs {
		if h.GetKey() == name {
			if raw := h.GetRawValue(); len(raw) > 0 {
				return string(raw), true
			}
			return h.GetValue(), true
		}
	}
	return "", false
}

func headerValue(hdrs []*corev3.HeaderValue, name string) string {
	v, _ := lookupHeader(hdrs, name)
	return v
}

func headersContinue(request bool) *extprocv3.ProcessingResponse {
	hr := &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{}}
	if request {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: hr}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: hr}}
}

// bodyContinue answers a body message. A replaced request body needs its
// content-length set by us: in BUFFERED mode Envoy leaves that to the
// processor (processing_mode.proto, BodySendMode).
func bodyContinue(request bool, newBody []byte, setLength bool) *extprocv3.ProcessingResponse {
	common := &extprocv3.CommonResponse{}
	if newBody != nil {
		common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: newBody}}
		if setLength {
			common.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader("content-length", strconv.Itoa(len(newBody))),
			}}
		}
	}
	br := &extprocv3.BodyResponse{Response: common}
	if request {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: br}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// skipRest answers request headers and tells Envoy to send nothing more for
// this request: it is not an API tokenmeter meters.
func skipRest() *extprocv3.ProcessingResponse {
	r := headersContinue(true)
	r.ModeOverride = &filterv3.ProcessingMode{
		RequestBodyMode:     filterv3.ProcessingMode_NONE,
		ResponseHeaderMode:  filterv3.ProcessingMode_SKIP,
		ResponseBodyMode:    filterv3.ProcessingMode_NONE,
		RequestTrailerMode:  filterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
	}
	return r
}

func bufferedResponseBody() *filterv3.ProcessingMode {
	return &filterv3.ProcessingMode{
		ResponseBodyMode:    filterv3.ProcessingMode_BUFFERED,
		ResponseTrailerMode: filterv3.ProcessingMode_SKIP,
	}
}

func passThroughBody() *extprocv3.ProcessingResponse { return bodyContinue(true, nil, false) }

// passThrough answers a message tokenmeter has no interest in.
func passThrough(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return headersContinue(true)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return headersContinue(false)
	case *extprocv3.ProcessingRequest_RequestBody:
		return bodyContinue(true, nil, false)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return bodyContinue(false, nil, false)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return &extprocv3.ProcessingResponse{}
}
