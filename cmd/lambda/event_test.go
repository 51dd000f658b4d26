package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

// fixture reads testdata/name with {{KEY}} placeholders replaced.
func fixture(tb testing.TB, name string, subst map[string]string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range subst {
		b = bytes.ReplaceAll(b, []byte("{{"+k+"}}"), []byte(v))
	}
	return b
}

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fixture    string
		kind       eventKind
		method     string
		path       string
		rawQuery   string
		header     map[string][]string // checked entries only
		noHeader   []string
		body       []byte
		remoteAddr string
	}{
		{
			name: "http api v2: list nodes, lower-case headers canonicalised", fixture: "http-api-v2-list-nodes.json",
			kind: kindHTTPAPI, method: "GET", path: "/nodes",
			header:     map[string][]string{"Authorization": {"Bearer {{VIEWER_TOKEN}}"}, "User-Agent": {"flight-power/dev"}},
			remoteAddr: "198.51.100.7", body: []byte{},
		},
		{
			name: "http api v2: raw query with repeated keys kept as sent, cookies joined", fixture: "http-api-v2-status.json",
			kind: kindHTTPAPI, method: "GET", path: "/", rawQuery: "nodes=demo%5B01-02%5D&nodes=probe01",
			header: map[string][]string{
				"Cookie":   {"session=abc; theme=dark"},
				"X-Custom": {"one,two"}, // payload 2.0 has already joined repeats
			},
			remoteAddr: "198.51.100.8", body: []byte{},
		},
		{
			name: "http api v2: named stage stripped from the path, base64 body decoded, IPv6 source", fixture: "http-api-v2-stage-base64.json",
			kind: kindHTTPAPI, method: "GET", path: "/groups",
			header:     map[string][]string{"Content-Type": {"application/octet-stream"}},
			body:       []byte{0x00, 0x01, 0x02, 0xff},
			remoteAddr: "2001:db8::17",
		},
		{
			name: "rest v1: multi-value query wins over single, multi-value headers, base64 body", fixture: "rest-v1-power-on.json",
			kind: kindREST, method: "PATCH", path: "/", rawQuery: "nodes=demo01&nodes=demo02",
			header: map[string][]string{
				"Authorization":   {"Bearer {{OPERATOR_TOKEN}}"},
				"X-Multi":         {"first", "second"},
				"X-Forwarded-For": {"203.0.113.9, 70.132.20.1"},
			},
			body:       []byte("{}"),
			remoteAddr: "203.0.113.9",
		},
		{
			name: "http api payload 1.0: stage stripped, decoded query encoded again", fixture: "http-api-v1-payload.json",
			kind: kindHTTPAPIv1, method: "GET", path: "/nodes", rawQuery: "nodes=a+b%26c",
			header:     map[string][]string{"Authorization": {"Bearer {{VIEWER_TOKEN}}"}},
			remoteAddr: "198.51.100.70", body: []byte{},
		},
		{
			name: "function url: told apart by its domain, groups and nodes", fixture: "function-url-status.json",
			kind: kindFunctionURL, method: "GET", path: "/", rawQuery: "nodes=demo01&groups=probes",
			header:     map[string][]string{"Authorization": {"Bearer {{OPERATOR_TOKEN}}"}},
			noHeader:   []string{"Cookie"},
			remoteAddr: "192.0.2.44", body: []byte{},
		},
		{
			name: "http api v2: no token", fixture: "http-api-v2-no-token.json",
			kind: kindHTTPAPI, method: "PATCH", path: "/", rawQuery: "nodes=demo01",
			noHeader:   []string{"Authorization"},
			remoteAddr: "198.51.100.66", body: []byte{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind, req, err := decodeEvent(fixture(t, tt.fixture, nil))
			if err != nil {
				t.Fatalf("decodeEvent: %v", err)
			}
			if kind != tt.kind {
				t.Errorf("kind: got %q, want %q", kind, tt.kind)
			}
			if req.Method != tt.method || req.Path != tt.path || req.RawQuery != tt.rawQuery {
				t.Errorf("got %s %q ? %q, want %s %q ? %q", req.Method, req.Path, req.RawQuery, tt.method, tt.path, tt.rawQuery)
			}
			for k, want := range tt.header {
				if got := req.Header.Values(k); !reflect.DeepEqual(got, want) {
					t.Errorf("header %s: got %q, want %q", k, got, want)
				}
			}
			for _, k := range tt.noHeader {
				if v := req.Header.Values(k); v != nil {
					t.Errorf("header %s: got %q, want none", k, v)
				}
			}
			if !bytes.Equal(req.Body, tt.body) || req.BodyTooBig {
				t.Errorf("body: got %q (too big %v), want %q", req.Body, req.BodyTooBig, tt.body)
			}
			if req.RemoteAddr != tt.remoteAddr {
				t.Errorf("remote addr: got %q, want %q", req.RemoteAddr, tt.remoteAddr)
			}
			if req.Transport != handler.TransportLambda {
				t.Errorf("transport: got %q, want %q", req.Transport, handler.TransportLambda)
			}
		})
	}
}

func TestDecodeEventRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		payload     []byte
		unsupported bool // errUnsupportedEvent, rather than a broken HTTP event
		want        string
	}{
		{"an S3 notification", fixture(t, "s3-put.json", nil), true, "unsupported event"},
		{"not JSON", []byte("GET / HTTP/1.1"), true, "not a JSON object"},
		{"JSON null", []byte("null"), true, "unsupported event"},
		{"a JSON array", []byte(`[{"httpMethod":"GET"}]`), true, "not a JSON object"},
		{"an empty object", []byte(`{}`), true, "unsupported event"},
		{"payload 2.0 with a bad base64 body", []byte(`{"version":"2.0","rawPath":"/","requestContext":{"http":{"method":"GET"}},"body":"***","isBase64Encoded":true}`), false, "does not decode"},
		{"rest v1 with headers of the wrong type", []byte(`{"httpMethod":"GET","path":"/","headers":{"a":1}}`), false, "proxy event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, req, err := decodeEvent(tt.payload)
			if err == nil {
				t.Fatalf("got request %+v, want an error", req)
			}
			if errors.Is(err, errUnsupportedEvent) != tt.unsupported {
				t.Errorf("errors.Is(err, errUnsupportedEvent) = %v, want %v (err %v)", !tt.unsupported, tt.unsupported, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestDecodeEventBodyCap(t *testing.T) {
	t.Parallel()
	ev := map[string]any{
		"version":        "2.0",
		"rawPath":        "/",
		"requestContext": map[string]any{"http": map[string]any{"method": "GET"}},
		"body":           strings.Repeat("x", handler.DefaultMaxBodyBytes+1),
	}
	payload, _ := json.Marshal(ev)
	_, req, err := decodeEvent(payload)
	if err != nil {
		t.Fatal(err)
	}
	if !req.BodyTooBig || len(req.Body) != handler.DefaultMaxBodyBytes {
		t.Errorf("got %d bytes, too big %v; want %d, true", len(req.Body), req.BodyTooBig, handler.DefaultMaxBodyBytes)
	}
}

func TestEncodeResponse(t *testing.T) {
	t.Parallel()
	resp := &handler.Response{
		Status: http.StatusMethodNotAllowed,
		Header: http.Header{
			"Content-Type": {"application/json"},
			"X-Request-Id": {"01J0000000000000000000000"},
			"Vary":         {"Accept", "Origin"},
			"Set-Cookie":   {"a=1", "b=2"},
		},
		Body: []byte(`{"errors":[]}`),
	}
	tests := []struct {
		name        string
		kind        eventKind
		wantHeaders map[string]any // the response's headers object
		multi       bool           // headers are in multiValueHeaders
		cookies     []any
	}{
		{"http api v2", kindHTTPAPI, map[string]any{"Content-Type": "application/json", "X-Request-Id": "01J0000000000000000000000", "Vary": "Accept, Origin"}, false, []any{"a=1", "b=2"}},
		{"function url", kindFunctionURL, map[string]any{"Content-Type": "application/json", "X-Request-Id": "01J0000000000000000000000", "Vary": "Accept, Origin"}, false, []any{"a=1", "b=2"}},
		{"rest v1", kindREST, map[string]any{"Content-Type": []any{"application/json"}, "X-Request-Id": []any{"01J0000000000000000000000"}, "Vary": []any{"Accept", "Origin"}, "Set-Cookie": []any{"a=1", "b=2"}}, true, nil},
		{"http api payload 1.0", kindHTTPAPIv1, map[string]any{"Content-Type": []any{"application/json"}, "X-Request-Id": []any{"01J0000000000000000000000"}, "Vary": []any{"Accept", "Origin"}, "Set-Cookie": []any{"a=1", "b=2"}}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := encodeResponse(tt.kind, resp)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("answer is not JSON: %v\n%s", err, out)
			}
			if got["statusCode"] != float64(405) || got["body"] != `{"errors":[]}` || got["isBase64Encoded"] == true {
				t.Errorf("got status %v body %v base64 %v, want 405, the body as text, not base64", got["statusCode"], got["body"], got["isBase64Encoded"])
			}
			key := "headers"
			if tt.multi {
				key = "multiValueHeaders"
			}
			if !reflect.DeepEqual(got[key], tt.wantHeaders) {
				t.Errorf("%s: got %v, want %v", key, got[key], tt.wantHeaders)
			}
			if c, _ := got["cookies"].([]any); !reflect.DeepEqual(c, tt.cookies) {
				t.Errorf("cookies: got %v, want %v", got["cookies"], tt.cookies)
			}
		})
	}

	t.Run("binary body goes base64", func(t *testing.T) {
		t.Parallel()
		out, err := encodeResponse(kindHTTPAPI, &handler.Response{Status: 200, Body: []byte{0xff, 0xfe}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out, []byte(`"body":"//4=","isBase64Encoded":true`)) {
			t.Errorf("got %s, want the body base64-encoded and flagged", out)
		}
	})
}
