package handler

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestTokenCache checks that remembering accepted tokens changes no
// answer: each case verifies a token once at accepted (filling the cache),
// then again at later, and wants the answer a fresh verification gives.
func TestTokenCache(t *testing.T) {
	t.Parallel()
	exp := testNow.Add(time.Hour)
	valid := "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp.Unix(), "sub": "alice", "role": "viewer"})
	withNBF := "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": exp.Unix(), "nbf": testNow.Unix()})
	for _, c := range []struct {
		name      string
		header    string
		second    string // header of the second call; "" = the same
		leeway    time.Duration
		later     time.Time
		wantError string // "" = accepted
	}{
		{"same token again", valid, "", 0, testNow.Add(time.Minute), ""},
		{"expired since", valid, "", 0, exp, "token expired"},
		{"within leeway after exp", valid, "", time.Minute, exp.Add(30 * time.Second), ""},
		{"past leeway after exp", valid, "", time.Minute, exp.Add(time.Minute), "token expired"},
		{"before nbf", withNBF, "", 0, testNow.Add(-time.Second), "not valid yet"},
		{"before nbf within leeway", withNBF, "", 2 * time.Second, testNow.Add(-time.Second), ""},
		{"signature changed", valid, valid[:len(valid)-2] + "AA", 0, testNow, "signature is invalid"},
		{"scheme dropped", valid, strings.TrimPrefix(valid, "Bearer "), 0, testNow, "not 'Bearer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cache := newTokenCache()
			if _, err := cache.verify(testSecret, c.header, testNow, c.leeway); err != nil {
				t.Fatalf("first verification: %v", err)
			}
			second := c.header
			if c.second != "" {
				second = c.second
			}
			got, err := cache.verify(testSecret, second, c.later, c.leeway)
			fresh, _, freshErr := verifyToken(testSecret, second, c.later, c.leeway)
			switch {
			case c.wantError == "" && err != nil:
				t.Fatalf("got %v, want the token accepted", err)
			case c.wantError != "" && (err == nil || !strings.Contains(err.Error(), c.wantError)):
				t.Fatalf("got error %v, want one containing %q", err, c.wantError)
			case (err == nil) != (freshErr == nil) || got != fresh:
				t.Fatalf("cached answer %+v, %v differs from a fresh one %+v, %v", got, err, fresh, freshErr)
			}
		})
	}
}

// BenchmarkVerifyToken compares a full verification with a cached one.
func BenchmarkVerifyToken(b *testing.B) {
	header := "Bearer " + sign(b, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": testNow.Add(time.Hour).Unix(), "sub": "bench"})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := verifyToken(testSecret, header, testNow, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		cache := newTokenCache()
		for b.Loop() {
			if _, err := cache.verify(testSecret, header, testNow, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
