package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The documentation is checked against the code it describes, so that it
// cannot drift again: docs/configuration.md against the flag set the
// binary parses, README.md's length, and every relative link.

const repoRoot = "../.."

// flagRow is one row of the flag table: | `-name` | `ENV` | default | meaning |
var flagRow = regexp.MustCompile("^\\| `-([a-z][a-z0-9.-]*)` \\| `([A-Z0-9_]+)` \\| ([^|]*) \\|")

// flagMention is a code span that starts like a flag: `-kafka.config k=v`.
var flagMention = regexp.MustCompile("`-([a-z][a-z0-9.-]*)")

func TestDocsConfigurationListsEveryFlag(t *testing.T) {
	fs := newFlagSet(&options{}, io.Discard)
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	rows := map[string]bool{}
	for _, line := range strings.Split(doc, "\n") {
		m := flagRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name, env, def := m[1], m[2], strings.TrimSpace(m[3])
		if rows[name] {
			t.Errorf("docs/configuration.md: -%s has two rows", name)
		}
		rows[name] = true
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("docs/configuration.md: row for -%s, which the binary does not have", name)
			continue
		}
		if want := envName(name); env != want {
			t.Errorf("docs/configuration.md: -%s: environment variable %s, want %s", name, env, want)
		}
		if !defaultDocumented(f, def) {
			t.Errorf("docs/configuration.md: -%s: default cell %q does not show the flag's default %q", name, def, f.DefValue)
		}
	}
	var missing []string
	fs.VisitAll(func(f *flag.Flag) {
		if !rows[f.Name] {
			missing = append(missing, "-"+f.Name)
		}
	})
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md: no row for %s", strings.Join(missing, ", "))
	}

	// Every flag named anywhere on the page must exist.
	for _, m := range flagMention.FindAllStringSubmatch(doc, -1) {
		if fs.Lookup(m[1]) == nil {
			t.Errorf("docs/configuration.md names -%s, which the binary does not have", m[1])
		}
	}
}

// defaultDocumented: the cell shows the default as Go prints it, in a code
// span; an empty default is "empty"; the host name is host-dependent.
func defaultDocumented(f *flag.Flag, cell string) bool {
	switch {
	case f.Name == "gateway.id":
		return strings.Contains(cell, "host name")
	case f.DefValue == "":
		return strings.HasPrefix(cell, "empty")
	}
	return strings.HasPrefix(cell, "`"+f.DefValue+"`")
}

func TestREADMEIsAFrontPage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if n := strings.Count(strings.TrimRight(readme, "\n"), "\n") + 1; n > 200 {
		t.Errorf("README.md has %d lines; keep it a front page of at most 200 and move reference material to docs/", n)
	}
	for _, cmd := range []string{"make run", "make test"} {
		if !strings.Contains(readme, cmd) {
			t.Errorf("README.md does not mention %q", cmd)
		}
	}
}

// mdLink is an inline Markdown link or image: [text](target) or
// [text](target "title").
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

func TestDocsAndREADMELinksResolve(t *testing.T) {
	files := []string{filepath.Join(repoRoot, "README.md")}
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("no docs/*.md found")
	}
	files = append(files, docs...)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(stripCode(string(b)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			p := filepath.Join(filepath.Dir(file), filepath.FromSlash(target))
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: link %q points to nothing (%v)", relToRoot(file), m[1], err)
			}
		}
	}
}

// stripCode drops fenced code blocks, whose brackets are not links.
func stripCode(s string) string {
	var b strings.Builder
	inFence := false
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if !inFence {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func relToRoot(p string) string {
	if r, err := filepath.Rel(repoRoot, p); err == nil {
		return r
	}
	return p
}
