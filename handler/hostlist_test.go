package handler

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestExpandHostlist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		expr string
		max  int
		want []string
	}{
		{"single", "node01", 0, []string{"node01"}},
		{"list", "node01,gpu1,login", 0, []string{"node01", "gpu1", "login"}},
		{"range padded", "node[01-03]", 0, []string{"node01", "node02", "node03"}},
		{"padding kept across width", "gpu[099-101]", 0, []string{"gpu099", "gpu100", "gpu101"}},
		{"no padding", "node[9-11]", 0, []string{"node9", "node10", "node11"}},
		{"zero alone is not padding", "n[0-2]", 0, []string{"n0", "n1", "n2"}},
		{"bracket list", "node[1-3,7]", 0, []string{"node1", "node2", "node3", "node7"}},
		{"bracket singles", "node[7,3]", 0, []string{"node7", "node3"}},
		{"multi bracket", "rack[1-2]n[01-02]", 0, []string{"rack1n01", "rack1n02", "rack2n01", "rack2n02"}},
		{"suffix after bracket", "n[1-2].ib", 0, []string{"n1.ib", "n2.ib"}},
		{"dash underscore dot", "cn-01_a.b,x_y-[1-2]", 0, []string{"cn-01_a.b", "x_y-1", "x_y-2"}},
		{"duplicates dropped first wins", "node[1-3],node2,node1", 0, []string{"node1", "node2", "node3"}},
		{"literal prefix with padding outside", "node0[7-8]", 0, []string{"node07", "node08"}},
		{"exact cap", "n[1-4]", 4, []string{"n1", "n2", "n3", "n4"}},
		{"bracket only", "[1-2]", 0, []string{"1", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ExpandHostlist(tt.expr, tt.max)
			if err != nil {
				t.Fatalf("ExpandHostlist(%q): %v", tt.expr, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ExpandHostlist(%q) = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestExpandHostlistErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		expr     string
		max      int
		wantItem string
		wantMsg  string
	}{
		{"empty", "", 0, "", "empty name"},
		{"trailing comma", "node1,", 0, "node1,", "empty name"},
		{"unclosed", "node[1-3", 0, "node[1-3", "unclosed"},
		{"unbalanced close", "node1]", 0, "node1]", "unbalanced"},
		{"nested", "n[1-[2]]", 0, "n[1-[2]]", "nested"},
		{"backwards", "node[5-1]", 0, "node[5-1]", "backwards"},
		{"letters in range", "node[a-c]", 0, "node[a-c]", "not a number"},
		{"empty brackets", "node[]", 0, "node[]", "empty brackets"},
		{"space", "node 1", 0, "node 1", "not allowed"},
		{"slash", "../etc", 0, "../etc", "not allowed"},
		{"semicolon", "a;rm", 0, "a;rm", "not allowed"},
		{"nul byte", "a\x00b", 0, "a\x00b", "not allowed"},
		{"over cap", "n[1-5]", 4, "n[1-5]", "limit of 4"},
		{"over cap across items", "a[1-3],b[1-3]", 4, "b[1-3]", "limit of 4"},
		{"over default cap", "node[1-99999999]", 0, "node[1-99999999]", "too large"},
		{"product over cap", "r[1-1000]n[1-1000]", 0, "r[1-1000]n[1-1000]", "limit of 65536"},
		{"huge number", "n[1-99999999999]", 0, "n[1-99999999999]", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ExpandHostlist(tt.expr, tt.max)
			var he *HostlistError
			if !errors.As(err, &he) {
				t.Fatalf("ExpandHostlist(%q) = %v, %v; want a *HostlistError", tt.expr, got, err)
			}
			if he.Item != tt.wantItem {
				t.Errorf("item: got %q, want %q", he.Item, tt.wantItem)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error: got %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

// Hostile items cost little: one over the cap is refused from its count,
// before any name is built (expanding brackets first cost 5 s and 1.5 GB
// for x[0-8000000][0-8000000], and the last case ran out of memory), and
// one of many brackets costs its names' bytes, not their square (226 MB
// before). Not parallel: it measures the allocations of the whole test
// binary.
func TestExpandHostlistHostileCost(t *testing.T) {
	tests := []struct {
		name     string
		expr     string
		wantErr  bool
		maxAlloc uint64
	}{
		{"two wide brackets", "x[0-8000000][0-8000000]", true, 1 << 20},
		{"widest bracket", "x[0-16777215]", true, 1 << 20},
		{"second item over the cap", "a[0-65535],b[0-65535]", true, 1 << 20},
		{"a thousand wide brackets", "x" + strings.Repeat("[0-9999999]", 1000), true, 1 << 20},
		{"twenty thousand one-number brackets", "x" + strings.Repeat("[1]", 20000), false, 16 << 20},
	}
	for _, tt := range tests {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ExpandHostlist(tt.expr, 0)
		runtime.ReadMemStats(&after)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: got error %v, want error %v", tt.name, err, tt.wantErr)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > tt.maxAlloc {
			t.Errorf("%s: allocated %d bytes, want at most %d", tt.name, got, tt.maxAlloc)
		}
	}
}

func TestCompressHostlist(t *testing.T) {
	t.Parallel()
	tests := []struct {
		names []string
		want  string
	}{
		{[]string{"node07", "node42"}, "node[07,42]"},
		{[]string{"node01", "node02", "node03", "node07"}, "node[01-03,07]"},
		{[]string{"node1"}, "node1"},
		{[]string{"login", "node2", "node1"}, "node[1-2],login"},
		{[]string{"gpu099", "gpu100"}, "gpu[099-100]"},
		{[]string{"n9", "n10", "n11"}, "n[9-11]"},
		{[]string{"rack1n01", "rack1n02"}, "rack1n[01-02]"},
		{[]string{"a1.ib", "a2.ib"}, "a[1-2].ib"},
	}
	for _, tt := range tests {
		got := CompressHostlist(tt.names)
		if got != tt.want {
			t.Errorf("CompressHostlist(%v) = %q, want %q", tt.names, got, tt.want)
		}
	}
}

// Compress then expand gives the same set of names back.
func TestCompressExpandRoundTrip(t *testing.T) {
	t.Parallel()
	var names []string
	for i := 1; i <= 300; i += 1 + i%7 {
		names = append(names, fmt.Sprintf("node%03d", i))
	}
	names = append(names, "gpu1", "gpu2", "gpu10", "login")
	back, err := ExpandHostlist(CompressHostlist(names), 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(back)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(back, want) {
		t.Errorf("round trip: got %v, want %v", back, want)
	}
}
