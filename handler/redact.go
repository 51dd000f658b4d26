package handler

import "strings"

// Redacted replaces a secret value wherever one would be shown or stored.
const Redacted = "[redacted]"

var secretWords = []string{"password", "passwd", "secret", "token", "key", "credential"}

// IsSecretName reports whether a variable name looks like it holds a secret
// (password, secret, token, key, ...), compared without regard to case.
func IsSecretName(name string) bool {
	l := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// RedactVariables returns a copy of vars with secret-looking values replaced
// by Redacted.
func RedactVariables(vars map[string]string) map[string]string {
	if vars == nil {
		return nil
	}
	out := make(map[string]string, len(vars))
	for k, v := range vars {
		if IsSecretName(k) {
			v = Redacted
		}
		out[k] = v
	}
	return out
}
