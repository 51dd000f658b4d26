package main

import (
	"fmt"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests run the default topology's platforms as shipped (the
// platforms section of the embedded file, only the nodes are generated)
// through the real server over HTTP, against the rigs in rigs_test.go.

// The ipmi platform against 8 ipmi_sim BMCs: each action changes exactly
// the targeted BMCs' power files, a wrong password and a stopped BMC fail
// only their own node with a clear reason, within the platform timeout,
// and no password is ever in argv, an answer or the audit files.
func TestIPMIPlatformAgainstSimulatedBMCs(t *testing.T) {
	requireSqlite3(t)
	requireTool(t, "/usr/bin/ipmitool", "ipmitool")
	t.Parallel()
	const (
		user    = "admin"
		pass    = "Pw-7f3a9c2e1b4d" // IPMI allows 16 bytes (20 for v2 only)
		wrong   = "Wr-0ng-9x8z7q6"
		timeout = 10 * time.Second // the shipped ipmi platform's
	)
	bmcs := startBMCs(t, user, pass, []bool{true, false, true, false, true, false, true, false})
	var topo strings.Builder
	topo.WriteString("static_nodes:\n")
	for i, b := range bmcs {
		fmt.Fprintf(&topo, "  node%02d: {platform: ipmi, ipmi_host: 127.0.0.1, ipmi_port: %d, ipmi_cipher: 3, ipmi_username: %s, ipmi_password: %s}\n", i+1, b.port, user, pass)
	}
	// The right user with a wrong password, on bmc05's port.
	fmt.Fprintf(&topo, "  badpass: {platform: ipmi, ipmi_host: 127.0.0.1, ipmi_port: %d, ipmi_cipher: 3, ipmi_username: %s, ipmi_password: %s}\n", bmcs[4].port, user, wrong)
	topo.WriteString("groups:\n  rack: [\"node[01-08]\"]\n")
	s := newServerFiles(t, topo.String()+shippedPlatforms(t), "")
	s.start()
	op := s.token("operator")
	watch := watchArgv(t, []string{pass, wrong}, "ipmitool")

	// power and sets are what each BMC's files must hold after each step.
	power := []string{"1", "0", "1", "0", "1", "0", "1", "0"}
	sets := make([][]string, len(bmcs))
	checkBMCs := func(step string) {
		t.Helper()
		for i, b := range bmcs {
			if got := b.power(t); got != power[i] {
				t.Errorf("after %s: %s power file: got %q, want %q", step, b.name, got, power[i])
			}
			if got := b.sets(); !slices.Equal(got, sets[i]) {
				t.Errorf("after %s: %s chassis sets: got %q, want %q", step, b.name, got, sets[i])
			}
		}
	}
	statusOf := func(nodes ...int) map[string]outcome {
		want := map[string]outcome{}
		for _, i := range nodes {
			if power[i] == "1" {
				want[fmt.Sprintf("node%02d", i+1)] = outcome{state: "on", exit: 0, running: "true"}
			} else {
				want[fmt.Sprintf("node%02d", i+1)] = outcome{state: "off", exit: 111, running: "false"}
			}
		}
		return want
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}
	rejected := fmt.Sprintf(`BMC 127.0.0.1:%d rejected user "admin" or its password`, bmcs[4].port)
	var answers [][]byte

	want := statusOf(all...)
	want["badpass"] = outcome{state: "unknown", exit: 1, running: "null", err: rejected}
	_, body := act(t, s, op, "GET", "groups=rack&nodes=badpass", want)
	answers = append(answers, body)
	checkBMCs("status")

	_, body = act(t, s, op, "PATCH", "nodes=node[02,04],badpass", map[string]outcome{
		"node02":  {state: "ok", exit: 0},
		"node04":  {state: "ok", exit: 0},
		"badpass": {state: "failed", exit: 1, err: rejected},
	})
	answers = append(answers, body)
	power[1], power[3] = "1", "1"
	sets[1], sets[3] = append(sets[1], "power_1"), append(sets[3], "power_1")
	checkBMCs("power on")

	_, body = act(t, s, op, "DELETE", "nodes=node[01,03]", map[string]outcome{
		"node01": {state: "ok", exit: 0},
		"node03": {state: "ok", exit: 0},
	})
	answers = append(answers, body)
	power[0], power[2] = "0", "0"
	sets[0], sets[2] = append(sets[0], "power_0"), append(sets[2], "power_0")
	checkBMCs("power off")

	_, body = act(t, s, op, "PUT", "nodes=node07", map[string]outcome{"node07": {state: "ok", exit: 0}})
	answers = append(answers, body)
	sets[6] = append(sets[6], "reset_1")
	checkBMCs("restart")

	_, body = act(t, s, op, "GET", "groups=rack", statusOf(all...))
	answers = append(answers, body)

	// A BMC that stops answering fails its node alone, with ipmitool's own
	// retries (-N 1 -R 1) and well within the platform timeout.
	bmcs[7].stop(t)
	dead := fmt.Sprintf("BMC 127.0.0.1:%d did not answer", bmcs[7].port)
	want = statusOf(0, 1, 2, 3, 4, 5, 6)
	want["node08"] = outcome{state: "unknown", exit: 1, running: "null", err: dead}
	want["badpass"] = outcome{state: "unknown", exit: 1, running: "null", err: rejected}
	got, body := act(t, s, op, "GET", "groups=rack&nodes=badpass", want)
	answers = append(answers, body)
	for _, node := range []string{"node08", "badpass"} {
		if a := got[node]; a.TimedOut || time.Duration(a.DurationMS)*time.Millisecond >= timeout {
			t.Errorf("status %s: got timed-out %v after %d ms, want ipmitool's own failure within %v", node, a.TimedOut, a.DurationMS, timeout)
		}
	}
	t.Logf("stopped BMC: status failed in %d ms; wrong password in %d ms", got["node08"].DurationMS, got["badpass"].DurationMS)

	_, body = act(t, s, op, "PATCH", "nodes=node[06,08]", map[string]outcome{
		"node06": {state: "ok", exit: 0},
		"node08": {state: "failed", exit: 1, err: dead},
	})
	answers = append(answers, body)
	power[5] = "1"
	sets[5] = append(sets[5], "power_1")
	checkBMCs("power on with a stopped BMC")

	watch.check(t)
	noSecretsAtRest(t, s, answers, pass, wrong)
	if got := sqlOne(t, s.db, "SELECT count(*) FROM results WHERE node = 'badpass' AND variables LIKE '%\"ipmi_password\":\"[redacted]\"%'"); got != "3" {
		t.Errorf("badpass audit rows with ipmi_password redacted: got %s, want 3", got)
	}
}

// The aws platform, with Debian's aws CLI, against the EC2 fake: pending
// and stopping are reported as starting and stopping, an unknown instance
// fails its node with EC2's reason and the CLI's exit code, and no AWS key
// is ever in argv, an answer or the audit files.
func TestAWSPlatformAgainstEC2Fake(t *testing.T) {
	requireSqlite3(t)
	requireTool(t, "/usr/bin/aws", "awscli")
	t.Parallel()
	const keyID, secretKey = "AKIAFLIGHTPOWER0TEST", "fpTestSecret/0123456789+abcdefghijKLMNOPQ"
	id := func(n int) string { return fmt.Sprintf("i-0f1a9000000000%03d", n) }
	fake := &ec2Fake{key: keyID, reboots: map[string]int{}, instances: map[string]string{
		id(1): "running", id(2): "stopped", id(3): "pending", id(4): "stopping", id(6): "running", id(7): "terminated",
	}}
	ec2 := httptest.NewServer(fake)
	t.Cleanup(ec2.Close)
	region := func(n int) string {
		if n%2 == 0 {
			return "us-east-2"
		}
		return "eu-west-1"
	}
	var topo strings.Builder
	topo.WriteString("static_nodes:\n")
	for n := 1; n <= 7; n++ { // aws05's instance does not exist
		fmt.Fprintf(&topo, "  aws%02d: {platform: aws, ec2_id: %s, region: %s}\n", n, id(n), region(n))
	}
	s := newServerFiles(t, topo.String()+shippedPlatforms(t), "")
	none := filepath.Join(s.dir, "no-such-aws-file")
	s.env = []string{
		pathWith(toolDir(t, "testdata/awsbin/aws")),
		"EC2_FAKE_URL=" + ec2.URL,
		"AWS_ACCESS_KEY_ID=" + keyID,
		"AWS_SECRET_ACCESS_KEY=" + secretKey,
		"AWS_DEFAULT_REGION=eu-west-1",
		"AWS_CONFIG_FILE=" + none,
		"AWS_SHARED_CREDENTIALS_FILE=" + none,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	s.start()
	op := s.token("operator")
	watch := watchArgv(t, []string{keyID, secretKey}, "/usr/bin/aws")
	var answers [][]byte
	checkCalls := func(step string, want ...ec2Call) {
		t.Helper()
		slices.SortFunc(want, func(a, b ec2Call) int { return strings.Compare(a.Action+a.Instance, b.Action+b.Instance) })
		if got := fake.takeCalls(); !slices.Equal(got, want) {
			t.Errorf("%s: EC2 calls\n\tgot  %v\n\twant %v", step, got, want)
		}
	}
	describe := func(ns ...int) []ec2Call {
		var out []ec2Call
		for _, n := range ns {
			out = append(out, ec2Call{"DescribeInstances", id(n), region(n)})
		}
		return out
	}
	on := outcome{state: "on", exit: 0, running: "true"}
	off := outcome{state: "off", exit: 111, running: "false"}
	starting := outcome{state: "starting", exit: 112, running: "false"}
	stopping := outcome{state: "stopping", exit: 113, running: "true"}
	notFound := "InvalidInstanceID.NotFound"

	_, body := act(t, s, op, "GET", "nodes=aws[01-07]", map[string]outcome{
		"aws01": on, "aws02": off, "aws03": starting, "aws04": stopping, "aws06": on,
		"aws05": {state: "unknown", exit: 254, running: "null", err: notFound},
		"aws07": {state: "unknown", exit: 1, running: "null", err: "instance " + id(7) + " is terminated: it cannot be started again"},
	})
	answers = append(answers, body)
	checkCalls("status", describe(1, 2, 3, 4, 5, 6, 7)...)

	_, body = act(t, s, op, "PATCH", "nodes=aws02,aws05", map[string]outcome{
		"aws02": {state: "ok", exit: 0},
		"aws05": {state: "failed", exit: 254, err: "An error occurred (InvalidInstanceID.NotFound) when calling the StartInstances operation: The instance ID '" + id(5) + "' does not exist"},
	})
	answers = append(answers, body)
	_, body = act(t, s, op, "DELETE", "nodes=aws01", map[string]outcome{"aws01": {state: "ok", exit: 0}})
	answers = append(answers, body)
	_, body = act(t, s, op, "PUT", "nodes=aws06", map[string]outcome{"aws06": {state: "ok", exit: 0}})
	answers = append(answers, body)
	checkCalls("power on, off, restart",
		ec2Call{"StartInstances", id(2), region(2)}, ec2Call{"StartInstances", id(5), region(5)},
		ec2Call{"StopInstances", id(1), region(1)}, ec2Call{"RebootInstances", id(6), region(6)})
	if got := fake.rebootCount(id(6)); got != 1 {
		t.Errorf("aws06 reboots: got %d, want 1", got)
	}

	_, body = act(t, s, op, "GET", "nodes=aws[01-04],aws06", map[string]outcome{
		"aws01": stopping, "aws02": starting, "aws03": starting, "aws04": stopping, "aws06": on,
	})
	answers = append(answers, body)
	checkCalls("status while moving", describe(1, 2, 3, 4, 6)...)

	fake.settle()
	_, body = act(t, s, op, "GET", "nodes=aws[01-04],aws06", map[string]outcome{
		"aws01": off, "aws02": on, "aws03": on, "aws04": off, "aws06": on,
	})
	answers = append(answers, body)
	checkCalls("status when settled", describe(1, 2, 3, 4, 6)...)
	for n, want := range map[int]string{1: "stopped", 2: "running", 3: "running", 4: "stopped", 6: "running", 7: "terminated"} {
		if got := fake.state(id(n)); got != want {
			t.Errorf("instance aws%02d: got %s, want %s", n, got, want)
		}
	}

	watch.check(t)
	noSecretsAtRest(t, s, answers, keyID, secretKey)
}

// The azure platform against the az stub: the exact az argv of every
// action, and Azure's transitional power states reported as starting and
// stopping.
func TestAzurePlatformAgainstStub(t *testing.T) {
	requireSqlite3(t)
	t.Parallel()
	const rg, rg2 = "hpc-rg(prod)", "other.rg"
	az := newAzStub(t, map[[2]string]string{
		{rg, "az01"}:  "PowerState/running",
		{rg, "az02"}:  "PowerState/deallocated",
		{rg2, "az03"}: "PowerState/starting",
		{rg2, "az04"}: "PowerState/deallocating",
		{rg2, "az05"}: "PowerState/stopped",
		{rg, "az06"}:  "PowerState/running",
	})
	group := map[string]string{"az01": rg, "az02": rg, "az03": rg2, "az04": rg2, "az05": rg2, "az06": rg, "azghost": rg}
	var topo strings.Builder
	topo.WriteString("static_nodes:\n")
	for _, n := range slices.Sorted(maps.Keys(group)) {
		fmt.Fprintf(&topo, "  %s: {platform: azure, resource_group: %q}\n", n, group[n])
	}
	s := newServerFiles(t, topo.String()+shippedPlatforms(t), "")
	s.env = []string{pathWith(toolDir(t, "testdata/azbin/az")), "AZ_STUB_DIR=" + az.dir}
	s.start()
	op := s.token("operator")

	const query = "instanceView.statuses[?starts_with(code, 'PowerState/')].code | [0]"
	argv := func(verb string, nodes ...string) []string {
		var out []string
		for _, n := range nodes {
			a := "vm " + verb + " --resource-group " + group[n] + " --name " + n
			if verb == "get-instance-view" {
				a += " --query " + query + " -o tsv"
			} else {
				a += " --no-wait"
			}
			out = append(out, a)
		}
		return out
	}
	checkCalls := func(step string, want ...string) {
		t.Helper()
		slices.Sort(want)
		if got := az.takeCalls(t); !slices.Equal(got, want) {
			t.Errorf("%s: az argv\n\tgot  %q\n\twant %q", step, got, want)
		}
	}
	on := outcome{state: "on", exit: 0, running: "true"}
	off := outcome{state: "off", exit: 111, running: "false"}
	starting := outcome{state: "starting", exit: 112, running: "false"}
	stopping := outcome{state: "stopping", exit: 113, running: "true"}
	notFound := "Message: The Resource 'Microsoft.Compute/virtualMachines/azghost' under resource group '" + rg + "' was not found."

	act(t, s, op, "GET", "nodes=az[01-06],azghost", map[string]outcome{
		"az01": on, "az02": off, "az03": starting, "az04": stopping, "az05": off, "az06": on,
		"azghost": {state: "unknown", exit: 3, running: "null", err: notFound},
	})
	checkCalls("status", argv("get-instance-view", "az01", "az02", "az03", "az04", "az05", "az06", "azghost")...)

	act(t, s, op, "PATCH", "nodes=az02,azghost", map[string]outcome{
		"az02":    {state: "ok", exit: 0},
		"azghost": {state: "failed", exit: 3, err: notFound},
	})
	checkCalls("power on", argv("start", "az02", "azghost")...)
	act(t, s, op, "DELETE", "nodes=az01", map[string]outcome{"az01": {state: "ok", exit: 0}})
	checkCalls("power off", argv("deallocate", "az01")...)
	act(t, s, op, "PUT", "nodes=az05,az06", map[string]outcome{
		"az05": {state: "failed", exit: 1, err: "Operation 'restart' is not allowed on VM 'az05' since the VM is stopped."},
		"az06": {state: "ok", exit: 0},
	})
	checkCalls("restart", argv("restart", "az05", "az06")...)

	moving := map[string]outcome{"az01": stopping, "az02": starting, "az03": starting, "az04": stopping, "az05": off, "az06": on}
	act(t, s, op, "GET", "nodes=az[01-06]", moving)
	checkCalls("status while moving", argv("get-instance-view", "az01", "az02", "az03", "az04", "az05", "az06")...)

	az.settle(t)
	act(t, s, op, "GET", "nodes=az[01-06]", map[string]outcome{"az01": off, "az02": on, "az03": on, "az04": off, "az05": off, "az06": on})
	checkCalls("status when settled", argv("get-instance-view", "az01", "az02", "az03", "az04", "az05", "az06")...)
	for n, want := range map[string]string{"az01": "deallocated", "az02": "running", "az03": "running", "az04": "deallocated", "az05": "stopped", "az06": "running"} {
		if got := az.state(t, group[n], n); got != "PowerState/"+want {
			t.Errorf("vm %s: got %s, want PowerState/%s", n, got, want)
		}
	}
}
