package runner

import (
	"slices"
	"strings"
	"testing"
)

func TestCommandEnv(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-s3cret-s3cret-s3cret-s3cret"
	drop := func(k string) bool { return strings.HasPrefix(k, "MY_") || k == "conf_key" }
	tests := []struct {
		name     string
		environ  []string
		defaults []string
		want     []string
	}{
		{"keeps the rest in order", []string{"PATH=/bin", "B=2", "A=1"}, nil, []string{"PATH=/bin", "B=2", "A=1"}},
		{"drops named keys", []string{"MY_SECRET=x", "conf_key=y", "A=1"}, nil, []string{"A=1"}},
		{"drops values holding the secret", []string{"X=pre" + secret + "post", "A=1"}, nil, []string{"A=1"}},
		{"adds missing defaults", []string{"A=1"}, []string{"PATH=/usr/bin", "HOME=/tmp"}, []string{"A=1", "PATH=/usr/bin", "HOME=/tmp"}},
		{"present keys beat defaults", []string{"PATH=/opt/bin"}, []string{"PATH=/usr/bin"}, []string{"PATH=/opt/bin"}},
		{"a dropped key gets its default", []string{"MY_PATH=/x"}, []string{"MY_PATH=/usr/bin"}, []string{"MY_PATH=/usr/bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := CommandEnv(tt.environ, secret, drop, tt.defaults...); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
