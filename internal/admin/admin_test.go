package admin

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

func TestAdminSurface(t *testing.T) {
	reg := prometheus.NewRegistry()
	promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "beacongate_test_total", Help: "t"}).Add(3)
	ready := false
	s := New(reg, func() (bool, string) { return ready, "no broker connection up" }, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("/metrics"); st != 200 || !strings.Contains(body, "beacongate_test_total 3") {
		t.Fatalf("/metrics: %d %q", st, body)
	}
	if st, body := get("/debug/pprof/"); st != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/: %d", st)
	}
	if st, body := get("/readyz"); st != 503 || !strings.Contains(body, "no broker") {
		t.Fatalf("/readyz not ready: %d %q", st, body)
	}
	ready = true
	if st, _ := get("/readyz"); st != 200 {
		t.Fatalf("/readyz ready: %d", st)
	}
	if st, _ := get("/i"); st != 404 {
		t.Fatalf("the admin port must not serve beacons: /i answered %d", st)
	}
}

func TestAdminToken(t *testing.T) {
	s := New(prometheus.NewRegistry(), func() (bool, string) { return true, "" }, "s3cret")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	do := func(path, auth string) int {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/metrics", "", 401}, {"/metrics", "Bearer wrong", 401}, {"/metrics", "Bearer s3cret", 200},
		{"/debug/pprof/", "", 401}, {"/debug/pprof/", "Bearer s3cret", 200},
		{"/readyz", "", 200}, {"/healthz", "", 200},
	} {
		if got := do(c.path, c.auth); got != c.want {
			t.Errorf("%s with %q: %d, want %d", c.path, c.auth, got, c.want)
		}
	}
}
