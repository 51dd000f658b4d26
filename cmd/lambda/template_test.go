package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The SAM template is parsed into yaml.Node, which keeps CloudFormation's
// short tags (!Ref, !Sub, !If, ...) that a plain unmarshal would reject.

func loadTemplate(t *testing.T) *yaml.Node {
	t.Helper()
	data, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("template.yaml does not parse: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatal("template.yaml is not one mapping")
	}
	return doc.Content[0]
}

// get follows mapping keys; nil when one is absent.
func get(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return n
}

// value is a scalar's value, or "" for a missing node.
func value(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

// keys lists a mapping's keys in order.
func keys(n *yaml.Node) []string {
	var out []string
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, n.Content[i].Value)
		}
	}
	return out
}

// walk calls f on n and every node below it.
func walk(n *yaml.Node, f func(*yaml.Node)) {
	f(n)
	for _, c := range n.Content {
		walk(c, f)
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	root := loadTemplate(t)
	if value(get(root, "Transform")) != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform: want AWS::Serverless-2016-10-31")
	}

	resources := get(root, "Resources")
	var functions []string
	for _, id := range keys(resources) {
		if value(get(resources, id, "Type")) == "AWS::Serverless::Function" {
			functions = append(functions, id)
		}
	}
	if len(functions) != 1 {
		t.Fatalf("got functions %v, want exactly one", functions)
	}
	id := functions[0]
	fn := get(resources, id)
	props := get(fn, "Properties")

	scalar := func(path ...string) string {
		n := get(props, path...)
		if n == nil || n.Kind != yaml.ScalarNode {
			t.Errorf("%s.Properties.%s: want a literal value", id, strings.Join(path, "."))
			return ""
		}
		return n.Value
	}
	if v := scalar("Handler"); v != "bootstrap" {
		t.Errorf("Handler: got %q, want bootstrap", v)
	}
	if v := scalar("Runtime"); v != "provided.al2023" {
		t.Errorf("Runtime: got %q, want provided.al2023", v)
	}
	if a := get(props, "Architectures"); a == nil || len(a.Content) != 1 || a.Content[0].Value != "arm64" {
		t.Errorf("Architectures: want [arm64]")
	}
	if v, err := strconv.Atoi(scalar("Timeout")); err != nil || v > 30 || v < 1 {
		t.Errorf("Timeout: got %q, want at most 30 (API Gateway's limit)", scalar("Timeout"))
	}
	if value(get(fn, "Metadata", "BuildMethod")) != "makefile" {
		t.Errorf("Metadata.BuildMethod: want makefile")
	}

	// The Makefile target SAM runs, and what it must put in ARTIFACTS_DIR.
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	target := regexp.MustCompile(`(?ms)^build-` + regexp.QuoteMeta(id) + `:[^\n]*\n((?:\t[^\n]*\n)+)`).FindSubmatch(mk)
	if target == nil {
		t.Fatalf("Makefile has no build-%s target for BuildMethod: makefile", id)
	}
	recipe := string(target[1])
	for _, want := range []string{"bootstrap BOOTSTRAP=$(ARTIFACTS_DIR)/bootstrap", "$(ARTIFACTS_DIR)/topology.yaml"} {
		if !strings.Contains(recipe, want) {
			t.Errorf("build-%s recipe lacks %s:\n%s", id, want, recipe)
		}
	}
	for _, want := range []string{"LAMBDA_ARCH     ?= arm64", "LAMBDA_TAGS     := lambda.norpc,", "-tags $(LAMBDA_TAGS)", "GOARCH=$(LAMBDA_ARCH) $(GO) build $(LAMBDA_FLAGS) -o $(BOOTSTRAP) ./cmd/lambda"} {
		if !strings.Contains(string(mk), want) {
			t.Errorf("Makefile lacks %q (the template's architecture and the runtime's build tag)", want)
		}
	}
	if !strings.Contains(string(mk), "export CGO_ENABLED ?= 0") {
		t.Error("Makefile does not build with CGO_ENABLED=0")
	}

	// The HTTP API reaches the function on a catch-all route.
	var httpAPI bool
	for _, ev := range keys(get(props, "Events")) {
		e := get(props, "Events", ev)
		if value(get(e, "Type")) != "HttpApi" {
			continue
		}
		httpAPI = true
		if get(e, "Properties", "Path") != nil || get(e, "Properties", "Method") != nil {
			t.Errorf("event %s: want no Path or Method (the $default catch-all route)", ev)
		}
		api := get(e, "Properties", "ApiId")
		if api == nil || api.Tag != "!Ref" || value(get(resources, api.Value, "Type")) != "AWS::Serverless::HttpApi" {
			t.Errorf("event %s: ApiId must !Ref the template's AWS::Serverless::HttpApi", ev)
		}
		if value(get(e, "Properties", "PayloadFormatVersion")) != "2.0" {
			t.Errorf("event %s: want PayloadFormatVersion 2.0", ev)
		}
	}
	if !httpAPI {
		t.Error("no HttpApi event")
	}

	// The environment: only variables the function reads, the secret by
	// reference only.
	vars := get(props, "Environment", "Variables")
	known := []string{envSecret, envTopology, envAuditDB, envJournalMode, envCommandTimeout, envWorkers, envScriptsDir, envLogLevel, envRequestTimeout, envFinishMargin}
	for _, k := range keys(vars) {
		if !slices.Contains(known, k) {
			t.Errorf("Environment.Variables.%s is not read by the function", k)
		}
	}
	if s := get(vars, envSecret); s == nil || s.Tag != "!Sub" || !strings.HasPrefix(s.Value, "{{resolve:secretsmanager:${") {
		t.Errorf("%s: want !Sub \"{{resolve:secretsmanager:${...}}}\", never a literal", envSecret)
	}

	// Optional pieces are conditional.
	for _, p := range []string{"VpcConfig", "FileSystemConfigs"} {
		if n := get(props, p); n == nil || n.Tag != "!If" {
			t.Errorf("%s: want !If on a condition, so it is optional", p)
		}
	}
	layers := get(props, "Layers")
	if layers == nil || len(layers.Content) == 0 {
		t.Error("Layers: want the optional tool layers")
	} else {
		for i, l := range layers.Content {
			if l.Tag != "!If" {
				t.Errorf("Layers[%d]: want !If on a condition, so the layer is optional", i)
			}
		}
	}
	if v := get(root, "Outputs", "ApiUrl", "Value"); v == nil || !strings.Contains(v.Value, "execute-api") {
		t.Error("Outputs.ApiUrl: want the API's URL")
	}

	// Every reference resolves: !Ref, !GetAtt and ${...} in !Sub name a
	// parameter, a resource or a pseudo parameter; !If names a condition.
	defined := map[string]bool{}
	for _, k := range append(keys(get(root, "Parameters")), keys(resources)...) {
		defined[k] = true
	}
	conditions := map[string]bool{}
	for _, k := range keys(get(root, "Conditions")) {
		conditions[k] = true
	}
	subVar := regexp.MustCompile(`\$\{([^}!]+)\}`)
	check := func(name, where string) {
		name, _, _ = strings.Cut(name, ".")
		if !defined[name] && !strings.HasPrefix(name, "AWS::") {
			t.Errorf("%s refers to undefined %q", where, name)
		}
	}
	walk(root, func(n *yaml.Node) {
		switch n.Tag {
		case "!Ref", "!GetAtt":
			check(n.Value, fmt.Sprintf("%s at line %d", n.Tag, n.Line))
		case "!Sub":
			for _, m := range subVar.FindAllStringSubmatch(n.Value, -1) {
				check(m[1], fmt.Sprintf("!Sub at line %d", n.Line))
			}
		case "!If":
			if len(n.Content) != 3 || !conditions[n.Content[0].Value] {
				t.Errorf("!If at line %d: want [Condition, then, else] with a defined condition", n.Line)
			}
		}
	})
}

// TestTemplateLint runs cfn-lint, which applies the SAM transform and checks
// the result against the CloudFormation resource specification, when it is
// installed.
func TestTemplateLint(t *testing.T) {
	t.Parallel()
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint not installed")
	}
	if testing.Short() {
		t.Skip("cfn-lint takes seconds")
	}
	cmd := exec.Command(lint, "../../template.yaml")
	cmd.Env = append(cleanEnv(), "AWS_DEFAULT_REGION=eu-west-1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("cfn-lint template.yaml: %v\n%s", err, out)
	}
}
