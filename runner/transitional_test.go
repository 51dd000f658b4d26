package runner

import (
	"reflect"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

func TestStatusExitCodesLoad(t *testing.T) {
	t.Parallel()
	topo := load(t, `platforms:
  cloud:
    status: exit 0
    status_exit_codes:
      112: starting
      113: stopping
      114: stopping
  plain:
    status: exit 0
`)
	want := map[int]string{112: "starting", 113: "stopping", 114: "stopping"}
	if got := topo.platforms["cloud"].transitional; !reflect.DeepEqual(got, want) {
		t.Errorf("cloud transitional: got %v, want %v", got, want)
	}
	if got := topo.platforms["plain"].transitional; len(got) != 0 {
		t.Errorf("plain transitional: got %v, want none", got)
	}
}

func TestStatusExitCodesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []Problem
	}{
		{
			name: "codes out of range or not numbers",
			src: "platforms:\n  p:\n    status_exit_codes:\n" +
				"      0: starting\n      1: starting\n      2: starting\n      126: stopping\n      256: stopping\n      x: stopping\n",
			want: []Problem{
				{4, `platform "p": status_exit_codes: exit code must be a number from 3 to 125, got "0" (0 is on, 1 and 2 are failures, 126 and up are the shell's and signals')`},
				{5, `platform "p": status_exit_codes: exit code must be a number from 3 to 125, got "1" (0 is on, 1 and 2 are failures, 126 and up are the shell's and signals')`},
				{6, `platform "p": status_exit_codes: exit code must be a number from 3 to 125, got "2" (0 is on, 1 and 2 are failures, 126 and up are the shell's and signals')`},
				{7, `platform "p": status_exit_codes: exit code must be a number from 3 to 125, got "126" (0 is on, 1 and 2 are failures, 126 and up are the shell's and signals')`},
				{8, `platform "p": status_exit_codes: exit code must be a number from 3 to 125, got "256" (0 is on, 1 and 2 are failures, 126 and up are the shell's and signals')`},
				{9, `platform "p": status_exit_codes: exit code must be a number from 3 to 125, got "x" (0 is on, 1 and 2 are failures, 126 and up are the shell's and signals')`},
			},
		},
		{
			name: "unknown state names",
			src:  "platforms:\n  p:\n    status_exit_codes:\n      112: startng\n      113: rebooting\n      114: [stopping]\n",
			want: []Problem{
				{4, `platform "p": status_exit_codes: 112: state must be starting or stopping, got "startng" (did you mean "starting"?)`},
				{5, `platform "p": status_exit_codes: 113: state must be starting or stopping, got "rebooting"`},
				{6, `platform "p": status_exit_codes: 114: state must be starting or stopping, got ""`},
			},
		},
		{
			name: "same code twice",
			src:  "platforms:\n  p:\n    status_exit_codes:\n      112: starting\n      0112: stopping\n",
			want: []Problem{{5, `platform "p": status_exit_codes: exit code 112 is set twice (first at line 4)`}},
		},
		{
			name: "code is the off code",
			src: "platforms:\n" +
				"  a:\n    status_exit_codes: {111: stopping}\n" +
				"  b:\n    status_exit_codes:\n      7: starting\n    status_off_exit_code: 7\n",
			want: []Problem{
				{3, `platform "a": status_exit_codes: 111 is already the default status_off_exit_code, which means off`},
				{6, `platform "b": status_exit_codes: 7 is already status_off_exit_code (line 7), which means off`},
			},
		},
		{
			name: "not a mapping",
			src:  "platforms:\n  p:\n    status_exit_codes: [112]\n",
			want: []Problem{{3, `platform "p": status_exit_codes must be a mapping of key: value`}},
		},
		{
			name: "misspelt key",
			src:  "platforms:\n  p:\n    status_exit_code: {112: starting}\n",
			want: []Problem{{3, `platform "p": unknown key "status_exit_code" (did you mean "status_exit_codes"?)`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := loadProblems(t, tt.src)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\ngot  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// A transitional status is a determined state, not an error; running keeps
// the settled state being left. Other actions ignore status_exit_codes.
func TestTransitionalStates(t *testing.T) {
	t.Parallel()
	r, _ := newRunner(t, `static_nodes:
  on: {platform: cloud, code: "0"}
  off: {platform: cloud, code: "111"}
  starting: {platform: cloud, code: "112"}
  stopping: {platform: cloud, code: "113"}
  broken: {platform: cloud, code: "1"}
  unmapped: {platform: cloud, code: "114"}
  plain: {platform: plain, code: "112"}
platforms:
  cloud:
    variables: [code]
    status: echo "instance is busy" >&2; exit "$code"
    power_on: exit "$code"
    status_exit_codes: {112: starting, 113: stopping}
  plain:
    variables: [code]
    status: exit "$code"
`, Options{})
	yes, no := true, false
	tests := []struct {
		node    string
		state   string
		success bool
		running *bool
		err     string
	}{
		{"on", handler.StateOn, true, &yes, ""},
		{"off", handler.StateOff, true, &no, ""},
		{"starting", handler.StateStarting, true, &no, ""},
		{"stopping", handler.StateStopping, true, &yes, ""},
		{"broken", handler.StateUnknown, false, nil, "exit 1: instance is busy"},
		{"unmapped", handler.StateUnknown, false, nil, "exit 114: instance is busy"},
		{"plain", handler.StateUnknown, false, nil, "exit 112"},
	}
	names := make([]string, len(tests))
	for i, tt := range tests {
		names[i] = tt.node
	}
	got := run(t, t.Context(), r, handler.ActionStatus, names...)
	for _, tt := range tests {
		res := got[tt.node]
		if res.State != tt.state || res.Success != tt.success || res.Error != tt.err {
			t.Errorf("%s: got state %q success %v error %q, want %q %v %q", tt.node, res.State, res.Success, res.Error, tt.state, tt.success, tt.err)
		}
		if (res.Running == nil) != (tt.running == nil) || res.Running != nil && *res.Running != *tt.running {
			t.Errorf("%s: got running %v, want %v", tt.node, fmtBoolPtr(res.Running), fmtBoolPtr(tt.running))
		}
	}

	on := run(t, t.Context(), r, handler.ActionPowerOn, "starting")["starting"]
	if on.State != handler.StateFailed || on.Success || on.ExitCode != 112 {
		t.Errorf("power_on exit 112: got state %q success %v exit %d, want failed false 112", on.State, on.Success, on.ExitCode)
	}
}
