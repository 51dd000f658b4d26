package runner

import (
	"slices"
	"strings"

	"github.com/openflighthpc/flight-power/handler"
)

// minScrubLen is the shortest secret value scrubbed from command output:
// shorter ones ("on", "1", "no") would redact ordinary words everywhere,
// and reveal little.
const minScrubLen = 4

// scrubber replaces secret values with handler.Redacted in what a command
// printed and in the error made from it, before either reaches the audit
// log or an API answer. It matches values verbatim: a command that encodes
// a secret (base64, URL or JSON escapes) before printing it is not caught.
type scrubber struct {
	values []string // unique, at least minScrubLen bytes, longest first
}

// newScrubber returns a scrubber for values, or nil when none is long
// enough to scrub.
func newScrubber(values []string) *scrubber {
	var vs []string
	for _, v := range values {
		if len(v) >= minScrubLen {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return nil
	}
	// Longest first: where two values match at one place, the longer one
	// is replaced whole.
	slices.SortFunc(vs, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	return &scrubber{values: slices.Compact(vs)}
}

// secretValues are the values of the secret-looking names in env
// (KEY=VALUE entries) and vars.
func secretValues(env []string, vars map[string]string) []string {
	var out []string
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && handler.IsSecretName(k) {
			out = append(out, v)
		}
	}
	for k, v := range vars {
		if handler.IsSecretName(k) {
			out = append(out, v)
		}
	}
	return out
}

// text returns s with every secret value replaced. When s was cut at the
// output cap, a secret may have been cut too: a beginning of one at the
// very end of s is replaced as well.
func (sc *scrubber) text(s string, truncated bool) string {
	if sc == nil || s == "" {
		return s
	}
	var pairs []string
	for _, v := range sc.values {
		if strings.Contains(s, v) {
			pairs = append(pairs, v, handler.Redacted)
		}
	}
	if len(pairs) > 0 {
		// One pass: a replacement is never searched again.
		s = strings.NewReplacer(pairs...).Replace(s)
	}
	if truncated {
		cut := 0
		for _, v := range sc.values {
			for k := min(len(v)-1, len(s)); k > cut; k-- {
				if strings.HasSuffix(s, v[:k]) {
					cut = k
					break
				}
			}
		}
		if cut > 0 {
			s = s[:len(s)-cut] + handler.Redacted
		}
	}
	return s
}
