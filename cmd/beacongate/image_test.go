package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
	"github.com/beacongate/beacongate/internal/kafkatest"
)

// The container image cannot be built or run here (no container runtime),
// so these tests run the binary the way the Dockerfile's final stage runs
// it, read from the Dockerfile itself: its USER, its ENV over the base
// image's, working directory /, ENTRYPOINT at its path, a read-only root
// file system (docker run --read-only, Kubernetes'
// readOnlyRootFilesystem) and a fresh volume on each VOLUME, in a mount
// namespace of their own. That needs root (to mount, then drop to the
// image's user); elsewhere they skip, and fail under CI.

// image is what the Dockerfile's final stage says about running the binary.
type image struct {
	uid, gid   int
	env        []string // base image's, then the Dockerfile's ENV
	entrypoint string
	volumes    []string
	workdir    string
}

// distrolessUsers are the named users of gcr.io/distroless (its
// /etc/passwd), which the Dockerfile's USER may name.
var distrolessUsers = map[string]int{"root": 0, "nonroot": 65532, "nobody": 65534}

// distrolessEnv is the environment gcr.io/distroless/base-debian12:nonroot
// sets before the Dockerfile's ENV.
var distrolessEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
	"HOME=/home/nonroot", "USER=nonroot",
}

// readImage parses the last stage of the Dockerfile (one instruction a
// line, with \ continuations).
func readImage(t *testing.T) image {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	cont := ""
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cont += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		lines = append(lines, cont+l)
		cont = ""
	}
	var last []string
	for _, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l), "FROM ") {
			last = nil
		}
		last = append(last, l)
	}
	img := image{uid: 0, gid: 0, env: append([]string(nil), distrolessEnv...), workdir: "/"}
	for _, l := range last {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "USER":
			u, g, _ := strings.Cut(rest, ":")
			img.uid, img.gid = userID(t, u), userID(t, g)
			if g == "" {
				img.gid = img.uid
			}
		case "ENV":
			k, v, ok := strings.Cut(rest, "=")
			if !ok || strings.Contains(v, " ") {
				t.Fatalf("Dockerfile: ENV %q: this test reads one KEY=value per ENV", rest)
			}
			img.env = append(img.env, k+"="+v)
		case "ENTRYPOINT":
			var argv []string
			if err := json.Unmarshal([]byte(rest), &argv); err != nil || len(argv) != 1 {
				t.Fatalf("Dockerfile: ENTRYPOINT %s: want the exec form with the binary alone", rest)
			}
			img.entrypoint = argv[0]
		case "VOLUME":
			var vols []string
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				vols = strings.Fields(rest)
			}
			img.volumes = append(img.volumes, vols...)
		case "WORKDIR":
			img.workdir = rest
		}
	}
	if img.entrypoint == "" {
		t.Fatal("Dockerfile: no ENTRYPOINT in the last stage")
	}
	return img
}

func userID(t *testing.T, name string) int {
	if name == "" {
		return 0
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n
	}
	id, ok := distrolessUsers[name]
	if !ok {
		t.Fatalf("Dockerfile: USER %q is not a user of the distroless base image", name)
	}
	return id
}

func (img image) getenv(k string) string {
	v := ""
	for _, kv := range img.env {
		if name, val, _ := strings.Cut(kv, "="); name == k {
			v = val
		}
	}
	return v
}

// needRootForImage skips where the test cannot run: under CI a missing
// tool or root fails instead, but a container that refuses mount
// namespaces (no CAP_SYS_ADMIN) skips everywhere.
func needRootForImage(t *testing.T) {
	t.Helper()
	why := ""
	switch {
	case runtime.GOOS != "linux":
		why = "needs Linux mount namespaces"
	case os.Geteuid() != 0:
		why = "needs root to mount a read-only root and a volume, then run as the image's user"
	}
	for _, tool := range []string{"mount", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = tool + " (util-linux) not installed"
		}
	}
	if why == "" {
		// A container without CAP_SYS_ADMIN cannot make a mount namespace.
		probe := exec.Command("/bin/sh", "-c", "mount -t tmpfs tmpfs /mnt")
		probe.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
		if out, err := probe.CombinedOutput(); err != nil {
			// Not a tool CI could install but the container's
			// privileges: skipped, loudly, even under CI, rather than
			// failing every run on such a machine.
			t.Skipf("running the binary as the image does needs a mount namespace, which this machine refuses (%v: %s)", err, strings.TrimSpace(string(out)))
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("running the binary as the image does %s", why)
	}
	t.Skipf("running the binary as the image does %s", why)
}

// launchAsImage starts the gateway in a new mount namespace: each
// VOLUME gets a fresh directory owned by the image's user (Docker copies
// the image directory's owner into a new volume; Kubernetes sets it with
// fsGroup), the binary is mounted at the ENTRYPOINT's path, the root file
// system is made read-only, and the process runs as USER in WORKDIR with
// env alone. It returns the gateway and the host directory of each volume.
func launchAsImage(t *testing.T, img image, env []string) (*gateway, map[string]string) {
	t.Helper()
	bin := kafkatest.GatewayBinary(t)
	var script strings.Builder
	script.WriteString("set -e\n")
	// mountAt makes path (a file or a directory) available under a
	// read-only root: where it does not exist, a tmpfs on its deepest
	// existing parent holds it, made read-only again afterwards.
	var readOnlyAgain []string
	mountAt := func(src, dst string, dir bool) {
		if _, err := os.Stat(dst); err != nil {
			parent := path.Dir(dst)
			for {
				if _, err := os.Stat(parent); err == nil {
					break
				}
				parent = path.Dir(parent)
			}
			if parent == "/" {
				t.Fatalf("%s: would need a tmpfs over /", dst)
			}
			fmt.Fprintf(&script, "mount -t tmpfs -o mode=0755 tmpfs %q\n", parent)
			if dir {
				fmt.Fprintf(&script, "mkdir -p %q\n", dst)
			} else {
				fmt.Fprintf(&script, "mkdir -p %q && touch %q\n", path.Dir(dst), dst)
			}
			readOnlyAgain = append(readOnlyAgain, parent)
		}
		fmt.Fprintf(&script, "mount --bind %q %q\n", src, dst)
	}
	volumes := map[string]string{}
	for _, v := range img.volumes {
		host := t.TempDir()
		if err := os.Chown(host, img.uid, img.gid); err != nil {
			t.Fatal(err)
		}
		volumes[v] = host
		mountAt(host, v, true)
	}
	mountAt(bin, img.entrypoint, false)
	for _, p := range readOnlyAgain {
		fmt.Fprintf(&script, "mount -o remount,ro %q\n", p)
	}
	// Volumes are mounted first: a bind mount made after the root turned
	// read-only would be read-only too.
	script.WriteString("mount -o remount,bind,ro /\n")
	// The fault this emulates: not even root can write the root now.
	script.WriteString("if touch /.beacongate-image-test 2>/dev/null; then echo 'image test: root is writable' >&2; exit 97; fi\n")
	script.WriteString("echo 'image test: root file system is read-only' >&2\n")
	fmt.Fprintf(&script, "cd %q\n", img.workdir)
	fmt.Fprintf(&script, "exec setpriv --reuid=%d --regid=%d --clear-groups -- env -i", img.uid, img.gid)
	for _, kv := range env {
		fmt.Fprintf(&script, " %q", kv)
	}
	fmt.Fprintf(&script, " %q\n", img.entrypoint)

	g := &gateway{logs: &syncBuffer{}, done: make(chan error, 1)}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "BEACONGATE_HTTP_LISTEN="); ok {
			g.http = v
		}
		if v, ok := strings.CutPrefix(kv, "BEACONGATE_ADMIN_LISTEN="); ok {
			g.admin = v
		}
	}
	g.cmd = exec.Command("/bin/sh", "-c", script.String())
	// A mount namespace of its own (private: nothing leaks to the host).
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.done
		if t.Failed() {
			t.Logf("gateway logs:\n%s", g.logs.String())
		}
	})
	return g, volumes
}

// TestImageStartsWithOnlyTheBrokers: the image, given nothing but
// BEACONGATE_KAFKA_BROKERS, starts as its non-root user on a read-only
// root, spools to its volume, takes a beacon into Kafka and stops with
// nothing lost. (The listen addresses are set too: here the ports are
// shared with the machine, in a container they are its own.)
func TestImageStartsWithOnlyTheBrokers(t *testing.T) {
	needRootForImage(t)
	img := readImage(t)
	if img.uid == 0 {
		t.Fatal("Dockerfile: the image runs as root; it must name a non-root USER")
	}
	spoolDir := img.getenv("BEACONGATE_SPOOL_DIR")
	if !path.IsAbs(spoolDir) {
		t.Fatalf("Dockerfile: BEACONGATE_SPOOL_DIR=%q: the spool must be an absolute path on a volume (the working directory is / and read-only)", spoolDir)
	}
	onVolume := ""
	for _, v := range img.volumes {
		if spoolDir == v || strings.HasPrefix(spoolDir, strings.TrimSuffix(v, "/")+"/") {
			onVolume = v
		}
	}
	if onVolume == "" {
		t.Fatalf("Dockerfile: the spool %s is on no VOLUME (%v): a read-only root cannot hold it", spoolDir, img.volumes)
	}

	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	env := append(append([]string(nil), img.env...),
		"BEACONGATE_KAFKA_BROKERS="+b.Addr(),
		"BEACONGATE_HTTP_LISTEN="+freeAddr(t), "BEACONGATE_ADMIN_LISTEN="+freeAddr(t))
	g, volumes := launchAsImage(t, img, env)
	if err := g.ready("/readyz"); err != nil {
		t.Fatalf("%v\n%s", err, g.logs.String())
	}
	if !strings.Contains(g.logs.String(), "image test: root file system is read-only") {
		t.Fatalf("the root file system was not made read-only:\n%s", g.logs.String())
	}
	// The process is the image's user, not root.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	wantUID := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", img.uid, img.uid, img.uid, img.uid)
	if !strings.Contains(string(status), wantUID) {
		t.Fatalf("gateway process is not uid %d:\n%s", img.uid, status)
	}

	if code, _, _ := get(t, "http://"+g.http+"/i?uid=image&ev=start"); code != 200 {
		t.Fatalf("pixel: %d", code)
	}
	recs := kafkatest.Consume(t, b.Addr(), "beacons", 1, 15*time.Second)
	if len(recs) != 1 || string(recs[0].Key) != "image" {
		t.Fatalf("read back %d records (first key %q), want the one pixel", len(recs), firstKey(recs))
	}

	// Two signals: the second skips the drain period, as an impatient
	// orchestrator's would; the shutdown still accounts for everything.
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, "readiness off after SIGTERM", 10*time.Second, func() bool {
		return strings.Contains(g.logs.String(), "signal received: shutting down")
	})
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	if code := g.exit(t, 40*time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, g.logs.String())
	}
	if f := g.finalLine(t); f.Lost != 0 || f.LeftInSpool != 0 {
		t.Fatalf("shutdown: %+v, want nothing lost or left", f)
	}
	if strings.Contains(g.logs.String(), "they are lost") {
		t.Fatalf("a clean run logged lost records:\n%s", g.logs.String())
	}
	// The spool was made on the volume, by the image's user.
	rel := strings.TrimPrefix(strings.TrimPrefix(spoolDir, onVolume), "/")
	fi, err := os.Stat(filepath.Join(volumes[onVolume], rel, "beacongate.json"))
	if err != nil {
		t.Fatalf("no spool on the volume: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != img.uid {
		t.Fatalf("spool file owned by uid %d, want the image's %d", st.Uid, img.uid)
	}
}

// TestImageWithoutSpoolVolumeFailsClearly: the flag's own default
// (./data/spool, relative to /) cannot work in the image. The start fails
// at once, with the reason, and does not claim that records were lost.
func TestImageWithoutSpoolVolumeFailsClearly(t *testing.T) {
	needRootForImage(t)
	img := readImage(t)
	var env []string
	for _, kv := range img.env {
		if !strings.HasPrefix(kv, "BEACONGATE_SPOOL_DIR=") {
			env = append(env, kv)
		}
	}
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	env = append(env, "BEACONGATE_KAFKA_BROKERS="+b.Addr(),
		"BEACONGATE_HTTP_LISTEN="+freeAddr(t), "BEACONGATE_ADMIN_LISTEN="+freeAddr(t))
	g, _ := launchAsImage(t, img, env)
	if code := g.exit(t, 20*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, g.logs.String())
	}
	logs := g.logs.String()
	if !strings.Contains(logs, "spool: cannot create directory ./data/spool") {
		t.Fatalf("the failed start does not say why:\n%s", logs)
	}
	if strings.Contains(logs, "they are lost") {
		t.Fatalf("a start that accepted nothing claims lost records:\n%s", logs)
	}
}

func firstKey(recs []*kgo.Record) string {
	if len(recs) == 0 {
		return ""
	}
	return string(recs[0].Key)
}
