package runner

import (
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

func TestScrubberText(t *testing.T) {
	t.Parallel()
	const R = handler.Redacted
	tests := []struct {
		name      string
		values    []string
		in        string
		truncated bool
		want      string
	}{
		{"every occurrence", []string{"hunter22"}, "pw=hunter22 again hunter22\n", false, "pw=" + R + " again " + R + "\n"},
		{"several values", []string{"alpha-pw", "beta-token"}, "beta-token/alpha-pw", false, R + "/" + R},
		{"longer value wins where both match", []string{"abcd", "abcdefgh"}, "xabcdefghx", false, "x" + R + "x"},
		{"a replacement is not searched again", []string{"[redacted]", "dact"}, "dact [redacted]", false, R + " " + R},
		{"short values are left", []string{"abc", "no"}, "abc no", false, "abc no"},
		{"multi-line value", []string{"-----BEGIN KEY-----\nMIIE\n-----END KEY-----"}, "k:\n-----BEGIN KEY-----\nMIIE\n-----END KEY-----\n", false, "k:\n" + R + "\n"},
		{"value cut at the cap", []string{"s3cret-value"}, "output ... s3cre", true, "output ... " + R},
		{"longest cut wins", []string{"s3cret-value", "cret-other"}, "x s3cret", true, "x " + R},
		{"a whole value before the cut", []string{"s3cret-value"}, "s3cret-value and s3c", true, R + " and " + R},
		{"uncut output keeps its end", []string{"s3cret-value"}, "output ... s3cre", false, "output ... s3cre"},
		{"nothing to find", []string{"s3cret-value"}, "plain output", true, "plain output"},
		{"empty output", []string{"s3cret-value"}, "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := newScrubber(tt.values).text(tt.in, tt.truncated); got != tt.want {
				t.Errorf("text(%q): got %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := newScrubber([]string{"", "abc"}); got != nil {
		t.Errorf("newScrubber of short values: got %v, want nil", got)
	}
	var none *scrubber
	if got := none.text("hunter22", true); got != "hunter22" {
		t.Errorf("nil scrubber: got %q, want the text unchanged", got)
	}
}

// A command that prints a secret value, on stdout, stderr or in the line
// its error is made from, has it replaced before the result leaves the
// runner; the command itself was given the real value.
func TestOutputIsScrubbed(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, `static_nodes:
  n1:
    platform: p
    ipmi_password: "s3cret 'pw' $(x)"
    bmc_token: tok-not-listed-42
    short_key: abc
    note: jwt-secret-value-0123456789abcdef
    user: admin
platforms:
  p:
    variables: [ipmi_password, short_key, note, user]
    optional_variables: {api_key: default-key-value}
    status: |-
      echo "user=$user pw=$ipmi_password key=$api_key short=$short_key"
      echo "note=$note token=tok-not-listed-42 aws=$AWS_SECRET_ACCESS_KEY"
      echo "failed for $ipmi_password" >&2
      exit 1
`, Options{
		BaseEnv: []string{testPath, "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_REGION=eu-west-1"},
		Redact:  []string{"jwt-secret-value-0123456789abcdef"},
	})
	res := run(t, t.Context(), r, handler.ActionStatus, "n1")["n1"]
	const R = handler.Redacted
	if want := "user=admin pw=" + R + " key=" + R + " short=abc\nnote=" + R + " token=" + R + " aws=" + R + "\n"; res.Stdout != want {
		t.Errorf("stdout:\ngot  %q\nwant %q", res.Stdout, want)
	}
	if want := "failed for " + R + "\n"; res.Stderr != want {
		t.Errorf("stderr: got %q, want %q", res.Stderr, want)
	}
	if want := "exit 1: failed for " + R; res.Error != want {
		t.Errorf("error: got %q, want %q", res.Error, want)
	}
	if got := res.Variables["ipmi_password"]; got != R {
		t.Errorf("Variables[ipmi_password]: got %q, want %q", got, R)
	}
}

// Output cut at the cap in the middle of a secret keeps none of it.
func TestScrubbedAtTheCap(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, `static_nodes:
  n1: {platform: p, ipmi_password: "0123456789-password"}
platforms:
  p:
    variables: [ipmi_password]
    status: printf '%s' "xxxxxxxxxx$ipmi_password"; printf 'xxxxxxxxxx%s' "$ipmi_password" >&2; exit 3
`, Options{OutputCap: 16})
	res := run(t, t.Context(), r, handler.ActionStatus, "n1")["n1"]
	want := "xxxxxxxxxx" + handler.Redacted
	if res.Stdout != want || !res.StdoutTruncated || res.Stderr != want || !res.StderrTruncated {
		t.Errorf("got stdout %q (cut %v), stderr %q (cut %v); want %q, cut, for both", res.Stdout, res.StdoutTruncated, res.Stderr, res.StderrTruncated, want)
	}
	if strings.Contains(res.Error, "012345") {
		t.Errorf("error %q holds the start of the secret", res.Error)
	}
}
