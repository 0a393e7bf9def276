package snippet

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// maxGzip is the snippet's weight budget on every page view of every site
// that embeds it: 2 KB gzipped, as served.
const maxGzip = 2048

func TestJSSize(t *testing.T) {
	a := JS()
	t.Logf("b.js: %d bytes, %d gzipped (budget %d)", len(a.Body), len(a.Gzip), maxGzip)
	if len(a.Gzip) > maxGzip {
		t.Fatalf("b.js is %d bytes gzipped, over the %d-byte budget", len(a.Gzip), maxGzip)
	}
}

func TestGzipIsBody(t *testing.T) {
	for name, a := range map[string]*Asset{"b.js": JS(), "demo.html": Demo()} {
		zr, err := gzip.NewReader(bytes.NewReader(a.Gzip))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, a.Body) {
			t.Errorf("%s: gzip does not decompress to the body", name)
		}
		if len(a.Body) == 0 {
			t.Errorf("%s: empty body", name)
		}
		// Every gateway of a fleet must serve the same bytes (and ETag).
		if !zr.ModTime.IsZero() || zr.Name != "" {
			t.Errorf("%s: gzip header has a time or name", name)
		}
		if !bytes.Equal(gzipBytes(a.Body), a.Gzip) {
			t.Errorf("%s: gzip is not deterministic", name)
		}
	}
}

func TestHeaders(t *testing.T) {
	js, demo := JS(), Demo()
	if js.ContentType != "text/javascript; charset=utf-8" || demo.ContentType != "text/html; charset=utf-8" {
		t.Errorf("content types %q, %q", js.ContentType, demo.ContentType)
	}
	if js.CacheControl != "public, max-age=3600, stale-while-revalidate=86400" || demo.CacheControl != "no-cache" {
		t.Errorf("cache control %q, %q", js.CacheControl, demo.CacheControl)
	}
	if JS() != js || Demo() != demo {
		t.Error("assets are recomputed per call")
	}
}

func TestETag(t *testing.T) {
	quoted := regexp.MustCompile(`^"[0-9a-f]{32}"$`)
	for name, a := range map[string]*Asset{"b.js": JS(), "demo.html": Demo()} {
		if !quoted.MatchString(a.ETag) {
			t.Errorf("%s: ETag %q is not a quoted 32-digit hex string", name, a.ETag)
		}
		sum := sha256.Sum256(a.Body)
		if want := `"` + hex.EncodeToString(sum[:16]) + `"`; a.ETag != want {
			t.Errorf("%s: ETag %s, want %s", name, a.ETag, want)
		}
		if again := newAsset(a.Body, a.ContentType, a.CacheControl); again.ETag != a.ETag {
			t.Errorf("%s: ETag not stable: %s then %s", name, a.ETag, again.ETag)
		}
	}
	if JS().ETag == Demo().ETag {
		t.Error("b.js and demo.html have the same ETag")
	}
}

func TestVersion(t *testing.T) {
	m := regexp.MustCompile(`const VERSION = '([^']*)'`).FindSubmatch(JS().Body)
	if m == nil {
		t.Fatal("no `const VERSION = '...'` in b.js")
	}
	if string(m[1]) != Version {
		t.Fatalf("b.js has version %q, Go has %q", m[1], Version)
	}
}

func TestDemo(t *testing.T) {
	body := string(Demo().Body)
	if !strings.Contains(body, `<script async src="/b.js" data-site="demo"></script>`) {
		t.Error(`demo.html does not load "/b.js" with data-site="demo"`)
	}
	// The demo is served by the gateway itself: it loads nothing from
	// anywhere else (no absolute or protocol-relative URLs at all).
	if u := regexp.MustCompile(`(?i)https?://[^\s"'<>)]*`).FindAllString(body, -1); len(u) > 0 {
		t.Errorf("demo.html has absolute URLs: %q", u)
	}
	if u := regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?//`).FindAllString(body, -1); len(u) > 0 {
		t.Errorf("demo.html has protocol-relative URLs: %q", u)
	}
	for _, want := range []string{"beacongate.q", "'track'", "'identify'", "'flush'", "sendBeacon"} {
		if !strings.Contains(body, want) {
			t.Errorf("demo.html lacks %s", want)
		}
	}
}

// TestSnippetBehaviour runs the JavaScript tests (b.test.mjs: b.js in a
// fake browser, node's built-in test runner, no packages) and a syntax
// check of b.js.
func TestSnippetBehaviour(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node is not on PATH (needed for the snippet's tests): %v", err)
		}
		t.Skipf("node is not on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, node, args...)
		cmd.Dir = "." // go test runs in the package directory
		out, err := cmd.CombinedOutput()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("node %s: timed out\n%s", strings.Join(args, " "), out)
		}
		if err != nil {
			t.Fatalf("node %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("--check", "b.js")
	out := run("--test", "b.test.mjs")
	// Keep the runner's summary in the verbose log, and make sure it ran
	// tests at all (a renamed file would otherwise pass silently).
	summary := regexp.MustCompile(`(?m)^# (tests|pass|fail) \d+$`).FindAllString(out, -1)
	t.Log(strings.Join(summary, ", "))
	if m := regexp.MustCompile(`(?m)^# pass (\d+)$`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Fatalf("node ran no passing tests:\n%s", out)
	}
}
