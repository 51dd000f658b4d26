package runner

import "strings"

// CommandEnv returns the environment commands start from: environ without
// the entries whose key drop names and without any entry whose value holds
// secret, then each of defaults (KEY=VALUE) whose key environ lacks. Both
// servers build Options.BaseEnv with it, so the rule that keeps their own
// configuration and secret away from commands lives in one place.
func CommandEnv(environ []string, secret string, drop func(key string) bool, defaults ...string) []string {
	out := make([]string, 0, len(environ)+len(defaults))
	have := make(map[string]bool, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if drop(k) || secret != "" && strings.Contains(v, secret) {
			continue
		}
		have[k] = true
		out = append(out, kv)
	}
	for _, kv := range defaults {
		if k, _, _ := strings.Cut(kv, "="); !have[k] {
			out = append(out, kv)
		}
	}
	return out
}
