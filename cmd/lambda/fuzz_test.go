package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

// FuzzDecodeEvent: any invocation payload either maps to a request the
// handler can serve, whose answer encodes to valid JSON in the event's own
// shape, or is refused with an error that says what was wrong. Never a
// panic.
func FuzzDecodeEvent(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no event fixtures in testdata: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"version":"2.0","rawPath":"/prod","requestContext":{"stage":"prod","http":{"method":"GET"}}}`,
		`{"version":"2.0","rawPath":"/%zz","requestContext":{"http":{"method":"GET"},"domainName":"x.lambda-url.eu-west-1.on.aws"}}`,
		`{"version":"2.0","body":"!!","isBase64Encoded":true,"requestContext":{"http":{"method":"PUT"}}}`,
		`{"version":"2.0","headers":5,"requestContext":{"http":{"method":"GET"}}}`,
		`{"httpMethod":"GET","path":"/nodes","multiValueQueryStringParameters":{"nodes":["a","b"]},"queryStringParameters":{"nodes":"c"}}`,
		`{"httpMethod":"PATCH","version":"1.0","path":"/$default/x","requestContext":{"stage":"$default"}}`,
		`{"httpMethod":"GET","multiValueHeaders":{"Authorization":["Bearer a","Bearer b"]},"headers":{"authorization":"Bearer c"}}`,
		`{"httpMethod":"GET","body":"` + strings.Repeat("A", 200) + `","isBase64Encoded":true}`,
		`[]`, `null`, `"x"`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	kinds := []eventKind{kindHTTPAPI, kindFunctionURL, kindHTTPAPIv1, kindREST}
	f.Fuzz(func(t *testing.T, payload []byte) {
		kind, req, err := decodeEvent(payload)
		if err != nil {
			if req != nil {
				t.Fatalf("got a request and the error %v", err)
			}
			msg := err.Error()
			clear := errors.Is(err, errUnsupportedEvent) ||
				strings.HasPrefix(msg, "payload 2.0 event: ") ||
				strings.HasPrefix(msg, "proxy event: ") ||
				strings.HasPrefix(msg, "body is marked base64 but does not decode")
			if !clear {
				t.Fatalf("error %q does not say what was wrong with the event", msg)
			}
			return
		}
		if req == nil || !slices.Contains(kinds, kind) {
			t.Fatalf("got kind %q, request %v; want a known kind and a request", kind, req)
		}
		if req.Transport != handler.TransportLambda || req.Method == "" || req.Header == nil {
			t.Fatalf("request %+v: want transport lambda, a method and headers", req)
		}
		if len(req.Body) > handler.DefaultMaxBodyBytes {
			t.Fatalf("body: got %d bytes, want at most %d", len(req.Body), handler.DefaultMaxBodyBytes)
		}
		for k := range req.Header {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("header %q is not canonical: the handler would not find it", k)
			}
		}
		resp := &handler.Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"01K"}}, Body: []byte(req.Path + req.RawQuery)}
		out, err := encodeResponse(kind, resp)
		if err != nil || !json.Valid(out) {
			t.Fatalf("encode the answer to a %s event: %v\n%s", kind, err, out)
		}
	})
}
