package handler

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MinSecretBytes is the shortest jwt_shared_secret the server accepts.
const MinSecretBytes = 32

// Roles a token may carry. A token without a role is an operator, so tokens
// minted by the original installer keep working.
const (
	RoleViewer   = "viewer"   // list and status
	RoleOperator = "operator" // and power on, off, restart
)

// Claims are the JWT claims flight-power reads and writes.
type Claims struct {
	Role string `json:"role,omitempty"`
	jwt.RegisteredClaims
}

// Caller is who a verified token says is calling.
type Caller struct {
	Subject string
	Role    string
}

// CheckSecret says why a shared secret is unusable, or nil.
func CheckSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("jwt_shared_secret is %d bytes; it must be at least %d (flight-power-server init writes a random one)", len(secret), MinSecretBytes)
	}
	return nil
}

// ValidRole reports whether role is one a token may carry ("" included).
func ValidRole(role string) bool {
	return role == "" || role == RoleViewer || role == RoleOperator
}

// MintToken signs an HS256 token for subject with role, valid for ttl.
func MintToken(secret []byte, subject, role string, ttl time.Duration, now time.Time) (string, error) {
	if err := CheckSecret(secret); err != nil {
		return "", err
	}
	if !ValidRole(role) {
		return "", fmt.Errorf("unknown role %q: use %s or %s", role, RoleViewer, RoleOperator)
	}
	if ttl <= 0 {
		return "", errors.New("token lifetime must be positive")
	}
	c := Claims{
		Role: role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// verifyToken checks an Authorization header value and returns the caller
// and the token's claims, or an EUNAUTHORIZED error that tells the user what
// to do. On success the claims have an expiry.
func verifyToken(secret []byte, header string, now time.Time, leeway time.Duration) (Caller, Claims, error) {
	scheme, raw, ok := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "missing Authorization header: send 'Authorization: Bearer <token>' (mint one with flight-power-server token)")
	}
	// RFC 7235: the scheme is case-insensitive.
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "Authorization header is not 'Bearer <token>'")
	}
	raw = strings.TrimSpace(raw)
	var c Claims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	_, err := p.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return secret, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		when := "the past"
		if c.ExpiresAt != nil {
			when = c.ExpiresAt.UTC().Format(time.RFC3339)
		}
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "token expired on %s: mint a new one with flight-power-server token", when)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "token has no expiry (exp): mint a new one with flight-power-server token")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "token is not valid yet (nbf is in the future)")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "token signature is invalid: it was not signed with this server's secret using HS256")
	default:
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "token is malformed: mint a new one with flight-power-server token")
	}
	if !ValidRole(c.Role) {
		return Caller{}, Claims{}, Errorf(EUNAUTHORIZED, "token has unknown role %q (want %s or %s)", c.Role, RoleViewer, RoleOperator)
	}
	role := c.Role
	if role == "" {
		role = RoleOperator
	}
	return Caller{Subject: c.Subject, Role: role}, c, nil
}

// tokenCache remembers the tokens it has accepted, so a client that sends
// the same token with every request (the CLI, a poller) pays for parsing,
// JSON decoding and the signature check once. Entries are keyed by a
// SHA-256 of the whole header, signature included: any other header is
// verified in full, and lookups compare hashes, not tokens. A hit still
// checks exp and nbf against now; one that fails them is verified again,
// for its error message. It is safe for concurrent use.
type tokenCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	caller   Caller
	exp, nbf time.Time // nbf is zero when the token has none
}

// tokenCacheSize bounds the cache; when full, it starts over.
const tokenCacheSize = 1024

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[[sha256.Size]byte]cachedToken)}
}

// verify is verifyToken for a handler with one secret.
func (c *tokenCache) verify(secret []byte, header string, now time.Time, leeway time.Duration) (Caller, error) {
	key := sha256.Sum256([]byte(header))
	c.mu.Lock()
	t, ok := c.m[key]
	c.mu.Unlock()
	// The same tests as the JWT parser's, with the same leeway.
	if ok && now.Before(t.exp.Add(leeway)) && !now.Before(t.nbf.Add(-leeway)) {
		return t.caller, nil
	}
	caller, claims, err := verifyToken(secret, header, now, leeway)
	if err != nil {
		return Caller{}, err
	}
	entry := cachedToken{caller: caller, exp: claims.ExpiresAt.Time}
	if claims.NotBefore != nil {
		entry.nbf = claims.NotBefore.Time
	}
	c.mu.Lock()
	if len(c.m) >= tokenCacheSize {
		clear(c.m)
	}
	c.m[key] = entry
	c.mu.Unlock()
	return caller, nil
}
