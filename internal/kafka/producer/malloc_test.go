//go:build linux

package producer_test

import (
	"os"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/beacongate/beacongate/internal/kafka/producer"
)

// TestCompressionScratchStaysMapped replays, on a thread of its own,
// what librdkafka allocates and frees to compress each batch (~170 KiB),
// and counts the thread's page faults. With glibc's default thresholds
// every free trims the arena down to a 128 KiB pad and every batch
// faults the pages above it in again (malloc.go); once New has run, the
// pages stay and only the first batch faults.
func TestCompressionScratchStaysMapped(t *testing.T) {
	if os.Getenv("GLIBC_TUNABLES") != "" {
		t.Skip("GLIBC_TUNABLES is set: the thresholds under test are the environment's")
	}
	const rounds = 200
	// The fault the tuning prevents: glibc's defaults (128 KiB each,
	// which also turns off its dynamic thresholds, as mallopt does).
	switch producer.SetMallocThresholds(128<<10, 128<<10) {
	case -1:
		t.Skip("not glibc: its allocator has its own trimming policy")
	case 0:
		t.Fatal("glibc refused the default thresholds")
	}
	untuned := producer.ChurnFaults(rounds)
	if untuned < 0 {
		t.Fatalf("churn failed: %d", untuned)
	}
	// New tunes once per process, and another test may have run it.
	producer.ForgetMallocTuning()
	b := startBroker(t, "beacons")
	p, err := producer.New(producer.Config{Brokers: b.Addr(), Topic: "beacons"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tuned := producer.ChurnFaults(rounds)
	t.Logf("%d batches' compression scratch: %d page faults with glibc's default thresholds, %d after New", rounds, untuned, tuned)
	// The default trim keeps a 128 KiB pad: each batch gives back and
	// faults in the ~42 KiB above it, 11 pages.
	if untuned < 5*rounds {
		t.Fatalf("with glibc's default thresholds only %d page faults in %d rounds: the churn this guards against did not happen", untuned, rounds)
	}
	// The first batch faults its ~42 pages in, the others none.
	if tuned > 100 {
		t.Fatalf("after New %d page faults in %d rounds (%.1f per batch): compression scratch is given back and faulted in again",
			tuned, rounds, float64(tuned)/rounds)
	}
}
