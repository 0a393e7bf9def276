package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/relay"
)

// TestDeadLettersBoundedPerRequest: a batch of 10,000 invalid events sends
// MaxDeadLettersPerRequest dead letters one by one and one summary, and
// counts the rest; the next request has its own allowance.
func TestDeadLettersBoundedPerRequest(t *testing.T) {
	ts, _, d := newAckServer(t, Config{MaxDeadLettersPerRequest: 5})
	before := testutil.ToFloat64(deadLettersSuppressed)
	body := "[" + strings.Repeat("7,", 9999) + "7]"
	r := ts.do(t, "POST", "/batch", "application/json", body)
	if r.status != 400 || !strings.Contains(r.body, `"rejected_count":10000`) {
		t.Fatalf("status %d %.200s", r.status, r.body)
	}
	d.mu.Lock()
	n := len(d.letters)
	var last map[string]string
	if n > 0 {
		last = d.headers[n-1]
	}
	d.mu.Unlock()
	if n != 6 {
		t.Fatalf("%d dead letters, want 5 and a summary", n)
	}
	if last["beacongate.reason"] != reasonSuppressed || last["beacongate.batch_index"] != "" ||
		!strings.Contains(last["beacongate.error"], "9995 more rejected events") || !strings.Contains(last["beacongate.error"], "indexes 5 to 9999") ||
		last["beacongate.size"] != fmt.Sprint(len(body)) {
		t.Fatalf("summary dead letter: %v", last)
	}
	if got := testutil.ToFloat64(deadLettersSuppressed) - before; got != 9995 {
		t.Fatalf("suppressed counted %v, want 9995", got)
	}
	// Under the bound: one by one, no summary; a new request starts afresh.
	ts.do(t, "POST", "/batch", "application/json", `[7, {"ok":1}, 8]`)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.letters) != 8 || d.letters[6] != "7" || d.letters[7] != "8" {
		t.Fatalf("dead letters after a small batch: %q", d.letters[6:])
	}
}

// TestDeadLettersOff: without a dead-letter topic nothing is prepared or
// counted as suppressed.
func TestDeadLettersOff(t *testing.T) {
	rel, err := relay.New(relay.Config{}, &ackKafka{dlq: &dlqKafka{}}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerWith(t, Config{MaxDeadLettersPerRequest: 1}, rel, nil)
	before := testutil.ToFloat64(deadLettersSuppressed)
	ts.do(t, "POST", "/batch", "application/json", `[7,8,9]`)
	if got := testutil.ToFloat64(deadLettersSuppressed) - before; got != 0 {
		t.Fatalf("suppressed counted %v without a dead-letter topic", got)
	}
}
