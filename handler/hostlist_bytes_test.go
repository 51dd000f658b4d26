package handler

import (
	"strings"
	"testing"
)

// A byte that is not UTF-8 is named as the byte it is: 0xff used to be
// shown as 'ÿ', a character the user never sent.
func TestHostlistNamesTheOffendingCharacter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"node\xff", `byte 0xff (not UTF-8) is not allowed`},
		{"node\xc3(", `byte 0xc3 (not UTF-8) is not allowed`},
		{"nodé", `character 'é' is not allowed`},
		{"node\x00", `character '\x00' is not allowed`},
		{"node$x", `character '$' is not allowed`},
	} {
		_, err := ExpandHostlist(c.in, 0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.in, err, c.want)
		}
	}
}
