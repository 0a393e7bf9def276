package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The gateway's own counters (its admin /metrics) are a second opinion
// next to the read-back: they say what the gateway thinks it did.

// gatewayCounters are the metrics snapshotted around a phase, summed
// over their labels.
var gatewayCounters = []string{
	"beacongate_events_accepted_total",
	"beacongate_events_rejected_total",
	"beacongate_kafka_records_produced_total",
	"beacongate_kafka_records_delivered_total",
	"beacongate_kafka_records_failed_total",
	"beacongate_records_lost_total",
	"beacongate_kafka_produce_rejected_total",
	"beacongate_http_panics_total",
}

// scrapeMetrics reads the admin /metrics and sums each wanted metric over
// its label sets.
func scrapeMetrics(ctx context.Context, adminURL string, names []string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("metrics request for %s: %w", adminURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s/metrics: %w", adminURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s/metrics: %s", adminURL, resp.Status)
	}
	return parseMetrics(resp.Body, names)
}

// parseMetrics sums the samples of the named metrics in Prometheus text.
func parseMetrics(r io.Reader, names []string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !want[name] {
			continue
		}
		rest := line[len(name):]
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	return out, nil
}

// settle waits, up to limit, until every record the gateway produced
// is delivered or failed (the producer's counters move in real time, its
// queue gauge only with librdkafka's statistics): the records
// acknowledged over HTTP have reached Kafka, and the gateway's CPU time
// includes delivering them.
func settle(ctx context.Context, adminURL string, limit time.Duration) (time.Duration, error) {
	const (
		produced  = "beacongate_kafka_records_produced_total"
		delivered = "beacongate_kafka_records_delivered_total"
		failed    = "beacongate_kafka_records_failed_total"
	)
	start := time.Now()
	for {
		m, err := scrapeMetrics(ctx, adminURL, []string{produced, delivered, failed})
		if err != nil {
			return time.Since(start), err
		}
		if _, ok := m[produced]; !ok {
			return time.Since(start), fmt.Errorf("%s/metrics has no %s", adminURL, produced)
		}
		left := m[produced] - m[delivered] - m[failed]
		if left <= 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > limit || ctx.Err() != nil {
			return time.Since(start), fmt.Errorf("%v records still undelivered after %v", left, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
