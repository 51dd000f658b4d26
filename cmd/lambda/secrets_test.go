package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openflighthpc/flight-power/handler"
)

// On Lambda a command gets the role's credentials but never the JWT
// secret, and whatever secret it prints (its own secret-looking variable,
// the role's secret key, the JWT secret it learnt some other way) is
// [redacted] in the answer, the SQLite audit log and the CloudWatch lines.
func TestCommandOutputIsScrubbedOnLambda(t *testing.T) {
	t.Parallel()
	const (
		password  = "hunter2-hunter2"
		awsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	)
	root := t.TempDir()
	topology := fmt.Sprintf(`static_nodes:
  leak01: {platform: leak, ipmi_password: %s}
platforms:
  leak:
    variables: [name, ipmi_password]
    status: |-
      env > env.txt
      echo "jwt=%s pw=$ipmi_password"
      echo "$AWS_SECRET_ACCESS_KEY" >&2
      exit 1
`, password, testSecret)
	if err := os.WriteFile(filepath.Join(root, "topology.yaml"), []byte(topology), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "audit.db")
	vars := map[string]string{envSecret: testSecret, envAuditDB: db}
	environ := []string{
		"PATH=" + os.Getenv("PATH"),
		envSecret + "=" + testSecret,
		"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
		"AWS_SECRET_ACCESS_KEY=" + awsSecret,
		"AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001",
	}
	var stdout, stderr syncBuffer
	a, closeAudit, err := setup(context.Background(), func(k string) string { return vars[k] }, environ, root, &stdout, &stderr)
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, stderr.Bytes())
	}
	defer closeAudit()

	ev := fmt.Sprintf(`{"version":"2.0","rawPath":"/","rawQueryString":"nodes=leak01","headers":{"authorization":"Bearer %s"},"requestContext":{"http":{"method":"GET","sourceIp":"198.51.100.9"}}}`, mint(t, "viewer"))
	out, err := a.Invoke(context.Background(), []byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != 200 {
		t.Fatalf("answer %s: %v", out, err)
	}
	var body handler.Document[handler.CommandAttributes]
	if err := json.Unmarshal([]byte(resp.Body), &body); err != nil || len(body.Data) != 1 {
		t.Fatalf("body %s: %v", resp.Body, err)
	}
	if got, want := body.Data[0].Attributes.Error, "exit 1: "+handler.Redacted; got != want {
		t.Errorf("error: got %q, want %q", got, want)
	}

	env, err := os.ReadFile(filepath.Join(root, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(env, []byte("AWS_SECRET_ACCESS_KEY="+awsSecret)) {
		t.Errorf("the command lacks the role's credentials:\n%s", env)
	}
	for _, bad := range []string{testSecret, envPrefix, "AWS_LAMBDA_RUNTIME_API"} {
		if bytes.Contains(env, []byte(bad)) {
			t.Errorf("the command's environment holds %q:\n%s", bad, env)
		}
	}

	sdb, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var gotOut, gotErr, gotVars string
	err = sdb.QueryRow(`SELECT stdout, stderr, variables FROM results WHERE node = 'leak01'`).Scan(&gotOut, &gotErr, &gotVars)
	sdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	R := handler.Redacted
	if want := "jwt=" + R + " pw=" + R + "\n"; gotOut != want {
		t.Errorf("audited stdout: got %q, want %q", gotOut, want)
	}
	if want := R + "\n"; gotErr != want {
		t.Errorf("audited stderr: got %q, want %q", gotErr, want)
	}
	if !strings.Contains(gotVars, `"ipmi_password":"`+R+`"`) {
		t.Errorf("audited variables: got %s, want ipmi_password redacted", gotVars)
	}

	where := map[string][]byte{"answer": out, "CloudWatch lines": stdout.Bytes(), "log": stderr.Bytes()}
	files, _ := filepath.Glob(db + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		where[filepath.Base(f)] = b
	}
	for what, b := range where {
		for _, secret := range []string{testSecret, password, awsSecret} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds the secret %q", what, secret)
			}
		}
	}
}
