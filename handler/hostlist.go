package handler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultHostlistCap bounds how many names one request may expand to.
const DefaultHostlistCap = 65536

// HostlistError reports the hostlist item that could not be expanded.
type HostlistError struct {
	Item   string
	Reason string
}

func (e *HostlistError) Error() string {
	return fmt.Sprintf("hostlist %q: %s", e.Item, e.Reason)
}

// ExpandHostlist expands comma-separated hostlist expressions with
// pdsh/Slurm meaning (node[01-10], rack[1-2]n[01-04], node[1-3,7]) into
// names, dropping duplicates (first seen wins). It fails when the expansion
// would exceed max names (DefaultHostlistCap when max <= 0), counted before
// any name is built.
func ExpandHostlist(expr string, max int) ([]string, error) {
	if max <= 0 {
		max = DefaultHostlistCap
	}
	items, err := splitTop(expr)
	if err != nil {
		return nil, err
	}
	// Every item is parsed and counted before any name is built.
	patterns := make([]pattern, len(items))
	total := 0
	for i, item := range items {
		p, err := parseItem(item)
		if err != nil {
			return nil, err
		}
		n := p.count()
		if n > max || total+n > max {
			return nil, &HostlistError{Item: item, Reason: fmt.Sprintf("expands past the limit of %d names", max)}
		}
		total += n
		patterns[i] = p
	}
	names := make([]string, 0, total)
	seen := make(map[string]struct{}, total)
	for _, p := range patterns {
		p.each(func(name string) {
			if _, ok := seen[name]; ok {
				return
			}
			seen[name] = struct{}{}
			names = append(names, name)
		})
	}
	return names, nil
}

// splitTop splits on commas outside brackets.
func splitTop(expr string) ([]string, error) {
	var items []string
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '[':
			depth++
			if depth > 1 {
				return nil, &HostlistError{Item: expr, Reason: "nested brackets"}
			}
		case ']':
			depth--
			if depth < 0 {
				return nil, &HostlistError{Item: expr, Reason: "unbalanced ']'"}
			}
		case ',':
			if depth == 0 {
				items = append(items, expr[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, &HostlistError{Item: expr[start:], Reason: "unclosed '['"}
	}
	items = append(items, expr[start:])
	for _, it := range items {
		if it == "" {
			return nil, &HostlistError{Item: expr, Reason: "empty name"}
		}
	}
	return items, nil
}

// A pattern is literal text interleaved with bracket sets. The sets are
// kept as ranges, not expanded, so that count is known before any name is
// built: a hostile item like x[0-9999999][0-9999999] is refused without
// allocating its names.
type pattern struct {
	lits []string // len(sets)+1 literal parts
	sets [][]span // each bracket's numbers and ranges, in order
}

// span is one part of a bracket: a number kept as written (lit), or the
// range lo..hi zero-padded to width.
type span struct {
	lit       string
	lo, hi    int
	width     int
	isLiteral bool
}

func (s span) size() int {
	if s.isLiteral {
		return 1
	}
	return s.hi - s.lo + 1
}

func setSize(set []span) int {
	n := 0
	for _, s := range set {
		n += s.size()
	}
	return n
}

func (p pattern) count() int {
	n := 1
	for _, s := range p.sets {
		n *= setSize(s)
		if n > 1<<31 {
			return 1 << 31
		}
	}
	return n
}

// each calls fn with every name, building them in one buffer so that an
// item of many brackets costs its names' bytes, not their square.
func (p pattern) each(fn func(string)) {
	var walk func(i int, buf []byte)
	walk = func(i int, buf []byte) {
		buf = append(buf, p.lits[i]...)
		if i == len(p.sets) {
			fn(string(buf))
			return
		}
		for _, s := range p.sets[i] {
			if s.isLiteral {
				walk(i+1, append(buf, s.lit...))
				continue
			}
			for n := s.lo; n <= s.hi; n++ {
				walk(i+1, appendPadded(buf, n, s.width))
			}
		}
	}
	walk(0, nil)
}

// appendPadded appends n in decimal, zero-padded to width.
func appendPadded(buf []byte, n, width int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(n), 10)
	for i := len(d); i < width; i++ {
		buf = append(buf, '0')
	}
	return append(buf, d...)
}

// describeChar names the character s starts with; a byte that does not
// start valid UTF-8 is shown as the byte it is, not as the Latin-1
// character of that number (0xff is not 'ÿ').
func describeChar(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size <= 1 {
		return fmt.Sprintf("byte 0x%02x (not UTF-8)", s[0])
	}
	return fmt.Sprintf("character %q", r)
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.'
}

// maxRange bounds the numbers one bracket may name, whatever the cap.
const maxRange = 1 << 24

func parseItem(item string) (pattern, error) {
	bad := func(reason string) (pattern, error) {
		return pattern{}, &HostlistError{Item: item, Reason: reason}
	}
	var p pattern
	lit := strings.Builder{}
	for i := 0; i < len(item); {
		c := item[i]
		switch {
		case c == '[':
			end := strings.IndexByte(item[i:], ']')
			if end < 0 {
				return bad("unclosed '['")
			}
			set, reason := parseBracket(item[i+1 : i+end])
			if reason != "" {
				return bad(reason)
			}
			p.lits = append(p.lits, lit.String())
			lit.Reset()
			p.sets = append(p.sets, set)
			i += end + 1
		case nameChar(c):
			lit.WriteByte(c)
			i++
		default:
			return bad(describeChar(item[i:]) + " is not allowed in a node name")
		}
	}
	p.lits = append(p.lits, lit.String())
	if len(p.sets) == 0 && p.lits[0] == "" {
		return bad("empty name")
	}
	return p, nil
}

// parseBracket reads "01-03,7" into its spans, keeping zero padding,
// without expanding the ranges.
func parseBracket(body string) ([]span, string) {
	if body == "" {
		return nil, "empty brackets"
	}
	var out []span
	total := 0
	for _, part := range strings.Split(body, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isDigits(lo) || (isRange && !isDigits(hi)) {
			return nil, fmt.Sprintf("%q is not a number or a range like 01-10", part)
		}
		if !isRange {
			out = append(out, span{lit: lo, isLiteral: true})
			total++
			continue
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || len(lo) > 9 || len(hi) > 9 {
			return nil, fmt.Sprintf("range %q is too large", part)
		}
		if a > b {
			return nil, fmt.Sprintf("range %q runs backwards", part)
		}
		total += b - a + 1
		if total > maxRange {
			return nil, fmt.Sprintf("range %q is too large", part)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		out = append(out, span{lo: a, hi: b, width: width})
	}
	return out, ""
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// CompressHostlist folds names back into hostlist expressions, the inverse
// of ExpandHostlist for display: node07,node42,node43 becomes
// node[07,42-43]. Groups keep the order in which their prefix first appears.
func CompressHostlist(names []string) string {
	type num struct {
		digits string
		value  int
	}
	type stem struct{ prefix, suffix string }
	var order []stem
	byStem := make(map[stem][]num)
	var plain []string
	seen := make(map[string]bool)
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		// the last run of digits is the number
		end := len(n)
		for end > 0 && !isDigit(n[end-1]) {
			end--
		}
		start := end
		for start > 0 && isDigit(n[start-1]) {
			start--
		}
		if start == end || end-start > 9 {
			plain = append(plain, n)
			continue
		}
		k := stem{n[:start], n[end:]}
		if _, ok := byStem[k]; !ok {
			order = append(order, k)
		}
		v, _ := strconv.Atoi(n[start:end])
		byStem[k] = append(byStem[k], num{n[start:end], v})
	}
	var out []string
	for _, k := range order {
		nums := byStem[k]
		// Zero-padded numbers fold with numbers of the same width; the
		// rest fold together unpadded.
		padded := make(map[int]bool)
		for _, x := range nums {
			if len(x.digits) > 1 && x.digits[0] == '0' {
				padded[len(x.digits)] = true
			}
		}
		byWidth := make(map[int][]int)
		var widths []int
		for _, x := range nums {
			w := 0
			if padded[len(x.digits)] {
				w = len(x.digits)
			}
			if _, ok := byWidth[w]; !ok {
				widths = append(widths, w)
			}
			byWidth[w] = append(byWidth[w], x.value)
		}
		for _, w := range widths {
			out = append(out, foldRun(k.prefix, k.suffix, w, byWidth[w]))
		}
	}
	out = append(out, plain...)
	return strings.Join(out, ",")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// foldRun writes prefix[a-b,c]suffix for the values, zero-padded to width.
func foldRun(prefix, suffix string, width int, vs []int) string {
	sort.Ints(vs)
	if len(vs) == 1 {
		return fmt.Sprintf("%s%0*d%s", prefix, width, vs[0], suffix)
	}
	var parts []string
	for i := 0; i < len(vs); {
		j := i
		for j+1 < len(vs) && vs[j+1] == vs[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprintf("%0*d", width, vs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%0*d-%0*d", width, vs[i], width, vs[j]))
		}
		i = j + 1
	}
	return prefix + "[" + strings.Join(parts, ",") + "]" + suffix
}
