package beaconv1_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// protocVersionLine matches the header line naming the protoc release,
// the one line allowed to differ: a protoc patch release does not change
// the generated code.
var protocVersionLine = regexp.MustCompile(`(?m)^// \tprotoc +.*$`)

// TestGeneratedCodeIsFresh regenerates beacon.pb.go with protoc and the
// protoc-gen-go pinned in go.mod, and fails if the committed file differs,
// so that an edit of beacon.proto (or a protobuf upgrade) cannot ship
// without the code consumers and the gateway's tests are built from.
func TestGeneratedCodeIsFresh(t *testing.T) {
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("protoc is not on PATH (%v); CI must check that beacon.pb.go matches beacon.proto", err)
		}
		t.Skip("protoc is not on PATH, so beacon.pb.go is not checked against beacon.proto; install protoc to run this check (CI fails without it)")
	}
	root := moduleRoot(t)
	tmp := t.TempDir()

	// Built from the module root, the tool directive in go.mod picks the
	// pinned protoc-gen-go version.
	plugin := filepath.Join(tmp, "protoc-gen-go")
	if runtime.GOOS == "windows" {
		plugin += ".exe"
	}
	run(t, root, "go", "build", "-o", plugin, "google.golang.org/protobuf/cmd/protoc-gen-go")

	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// Run as `make proto` does, from the root with -I ., so that the
	// "source:" header line and the descriptor's file name match.
	run(t, root, protoc,
		"--plugin=protoc-gen-go="+plugin,
		"--go_out="+out,
		"--go_opt=paths=source_relative",
		"-I", ".",
		"proto/beacongate/v1/beacon.proto")

	fresh, err := os.ReadFile(filepath.Join(out, "proto", "beacongate", "v1", "beacon.pb.go"))
	if err != nil {
		t.Fatalf("reading the regenerated file: %v", err)
	}
	committed, err := os.ReadFile("beacon.pb.go")
	if err != nil {
		t.Fatalf("reading the committed file: %v", err)
	}
	fresh = protocVersionLine.ReplaceAll(fresh, nil)
	committed = protocVersionLine.ReplaceAll(committed, nil)
	if !bytes.Equal(fresh, committed) {
		t.Fatalf("proto/beacongate/v1/beacon.pb.go is stale: it differs from what beacon.proto generates; run `make proto` and commit the result\n%s",
			firstDiff(committed, fresh))
	}
}

// moduleRoot returns the directory of go.mod, where `make proto` runs.
func moduleRoot(t *testing.T) string {
	t.Helper()
	gomod := strings.TrimSpace(run(t, ".", "go", "env", "GOMOD"))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside the module", gomod)
	}
	return filepath.Dir(gomod)
}

// run runs name with args in dir and returns its standard output.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, stderr.Bytes())
	}
	return string(out)
}

// firstDiff describes the first line where the committed and regenerated
// files differ.
func firstDiff(committed, fresh []byte) string {
	c := strings.Split(string(committed), "\n")
	f := strings.Split(string(fresh), "\n")
	for i := 0; i < len(c) || i < len(f); i++ {
		var cl, fl string
		if i < len(c) {
			cl = c[i]
		}
		if i < len(f) {
			fl = f[i]
		}
		if cl != fl || i >= len(c) || i >= len(f) {
			return fmt.Sprintf("first difference at line %d:\n  committed:   %s\n  regenerated: %s", i+1, cl, fl)
		}
	}
	return "files differ"
}
