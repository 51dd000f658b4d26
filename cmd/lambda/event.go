package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/openflighthpc/flight-power/handler"
)

// This file is the whole event <-> request mapping: API Gateway HTTP API
// (payload 2.0 and 1.0), REST API proxy (v1) and Function URL events in,
// their matching response shapes out.

// eventKind names the shape of an invocation payload, which decides the
// shape of the answer.
type eventKind string

const (
	kindHTTPAPI     eventKind = "http-api-v2"  // API Gateway HTTP API, payload 2.0
	kindFunctionURL eventKind = "function-url" // Lambda Function URL (same shape as payload 2.0)
	kindHTTPAPIv1   eventKind = "http-api-v1"  // API Gateway HTTP API, payload 1.0 (REST's shape)
	kindREST        eventKind = "rest-v1"      // API Gateway REST API, proxy integration
)

// errUnsupportedEvent is the answer to a payload that is not an HTTP event.
var errUnsupportedEvent = errors.New("unsupported event: want an API Gateway HTTP API (payload 2.0 or 1.0), REST API proxy or Function URL event")

// eventProbe holds the few fields that tell the event shapes apart.
type eventProbe struct {
	Version        string `json:"version"`
	HTTPMethod     string `json:"httpMethod"`
	RequestContext struct {
		HTTP struct {
			Method string `json:"method"`
		} `json:"http"`
		DomainName string `json:"domainName"`
	} `json:"requestContext"`
}

// decodeEvent maps an invocation payload to a handler request. An error
// means the payload is not an HTTP event this function can answer.
func decodeEvent(payload []byte) (eventKind, *handler.Request, error) {
	var probe eventProbe
	if err := json.Unmarshal(payload, &probe); err != nil {
		return "", nil, fmt.Errorf("%w: payload is not a JSON object: %v", errUnsupportedEvent, err)
	}
	switch {
	case probe.Version == "2.0" && probe.RequestContext.HTTP.Method != "":
		var e events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(payload, &e); err != nil {
			return "", nil, fmt.Errorf("payload 2.0 event: %w", err)
		}
		kind := kindHTTPAPI
		if strings.Contains(probe.RequestContext.DomainName, ".lambda-url.") {
			kind = kindFunctionURL
		}
		req, err := fromV2(&e)
		return kind, req, err
	case probe.HTTPMethod != "":
		var e events.APIGatewayProxyRequest
		if err := json.Unmarshal(payload, &e); err != nil {
			return "", nil, fmt.Errorf("proxy event: %w", err)
		}
		kind := kindREST
		if probe.Version == "1.0" {
			kind = kindHTTPAPIv1
		}
		req, err := fromV1(&e, kind == kindHTTPAPIv1)
		return kind, req, err
	}
	return "", nil, errUnsupportedEvent
}

// fromV2 maps an HTTP API payload 2.0 or Function URL event.
func fromV2(e *events.APIGatewayV2HTTPRequest) (*handler.Request, error) {
	raw := e.RawPath
	if raw == "" {
		raw = e.RequestContext.HTTP.Path
	}
	h := make(http.Header, len(e.Headers)+1)
	for k, v := range e.Headers {
		// Payload 2.0 joins repeated headers with commas into one value.
		h.Add(k, v)
	}
	if len(e.Cookies) > 0 {
		h.Set("Cookie", strings.Join(e.Cookies, "; "))
	}
	body, tooBig, err := decodeBody(e.Body, e.IsBase64Encoded)
	if err != nil {
		return nil, err
	}
	return &handler.Request{
		Method:     e.RequestContext.HTTP.Method,
		Path:       unescapePath(stripStage(raw, e.RequestContext.Stage)),
		RawQuery:   e.RawQueryString,
		Header:     h,
		Body:       body,
		BodyTooBig: tooBig,
		RemoteAddr: e.RequestContext.HTTP.SourceIP,
		Transport:  handler.TransportLambda,
	}, nil
}

// fromV1 maps a REST API proxy event, or an HTTP API payload 1.0 event
// (whose path carries a named stage, as in payload 2.0).
func fromV1(e *events.APIGatewayProxyRequest, pathHasStage bool) (*handler.Request, error) {
	path := e.Path
	if pathHasStage {
		path = stripStage(path, e.RequestContext.Stage)
	}

	h := make(http.Header, len(e.MultiValueHeaders)+len(e.Headers))
	for k, vs := range e.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for k, v := range e.Headers {
		if len(h.Values(k)) == 0 {
			h.Add(k, v)
		}
	}

	// API Gateway hands v1 the query decoded; encode it again so the
	// handler parses one format for every transport.
	q := url.Values{}
	for k, vs := range e.MultiValueQueryStringParameters {
		q[k] = append(q[k], vs...)
	}
	for k, v := range e.QueryStringParameters {
		if _, ok := q[k]; !ok {
			q.Set(k, v)
		}
	}

	body, tooBig, err := decodeBody(e.Body, e.IsBase64Encoded)
	if err != nil {
		return nil, err
	}
	return &handler.Request{
		Method:     e.HTTPMethod,
		Path:       path,
		RawQuery:   q.Encode(),
		Header:     h,
		Body:       body,
		BodyTooBig: tooBig,
		RemoteAddr: e.RequestContext.Identity.SourceIP,
		Transport:  handler.TransportLambda,
	}, nil
}

// stripStage removes a named stage from the front of a path: an HTTP API
// served on stage "prod" sees /prod/nodes, and the API is /nodes. The
// $default stage adds no prefix.
func stripStage(path, stage string) string {
	if stage == "" || stage == "$default" {
		return path
	}
	prefix := "/" + stage
	switch {
	case path == prefix:
		return "/"
	case strings.HasPrefix(path, prefix+"/"):
		return path[len(prefix):]
	}
	return path
}

// unescapePath decodes a raw path as net/http does for URL.Path; a path
// that does not decode is kept as sent, and the handler answers 404.
func unescapePath(raw string) string {
	p, err := url.PathUnescape(raw)
	if err != nil {
		return raw
	}
	return p
}

// decodeBody returns the request body, at most handler.DefaultMaxBodyBytes
// of it, and whether it was longer.
func decodeBody(body string, isBase64 bool) ([]byte, bool, error) {
	b := []byte(body)
	if isBase64 {
		var err error
		if b, err = base64.StdEncoding.DecodeString(body); err != nil {
			return nil, false, fmt.Errorf("body is marked base64 but does not decode: %w", err)
		}
	}
	if len(b) > handler.DefaultMaxBodyBytes {
		return b[:handler.DefaultMaxBodyBytes], true, nil
	}
	return b, false, nil
}

// encodeResponse maps a handler response to the answer kind expects.
func encodeResponse(kind eventKind, resp *handler.Response) ([]byte, error) {
	body, isBase64 := responseBody(resp.Body)
	switch kind {
	case kindHTTPAPI, kindFunctionURL:
		headers := make(map[string]string, len(resp.Header))
		var cookies []string
		for k, vs := range resp.Header {
			if http.CanonicalHeaderKey(k) == "Set-Cookie" {
				cookies = append(cookies, vs...) // payload 2.0 carries them apart
				continue
			}
			headers[k] = strings.Join(vs, ", ")
		}
		if kind == kindFunctionURL {
			return json.Marshal(events.LambdaFunctionURLResponse{
				StatusCode: resp.Status, Headers: headers, Body: body,
				IsBase64Encoded: isBase64, Cookies: cookies,
			})
		}
		return json.Marshal(events.APIGatewayV2HTTPResponse{
			StatusCode: resp.Status, Headers: headers, Body: body,
			IsBase64Encoded: isBase64, Cookies: cookies,
		})
	case kindREST, kindHTTPAPIv1:
		return json.Marshal(events.APIGatewayProxyResponse{
			StatusCode: resp.Status, MultiValueHeaders: resp.Header,
			Body: body, IsBase64Encoded: isBase64,
		})
	}
	return nil, fmt.Errorf("no response shape for event kind %q", kind)
}

// responseBody is the body as event text: itself when it is UTF-8 (the
// API answers JSON), base64 otherwise.
func responseBody(b []byte) (string, bool) {
	if utf8.Valid(b) {
		return string(b), false
	}
	return base64.StdEncoding.EncodeToString(b), true
}
