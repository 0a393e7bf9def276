package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// writeText prints the report as the tables a terminal shows.
func writeText(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	c := r.Config
	ew.printf("beacongate-bench run %s, %s, %s, %d CPUs\n", r.RunID, r.Started.Format("2006-01-02 15:04:05Z"), r.GoVersion, r.CPUs)
	if r.Gateway != "" {
		ew.printf("gateway  %s\n", r.Gateway)
	}
	ew.printf("load     %s\n", loadLine(c))
	ew.printf("traffic  mix %s (by request), events ~%d B (±50%%), %d events/batch, %.2f events/request, %d keys\n",
		c.Mix, c.EventBytes, c.BatchEvents, c.EventsPerRequest, c.Keys)
	target := c.Target
	if c.Spawned {
		target += fmt.Sprintf(" (spawned %s; broker: %s)", c.GatewayBin, c.Broker)
	}
	ew.printf("target   %s, topic %q\n\n", target, c.Topic)

	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\trequests\tevents\treq/s\tevents/s\tp50\tp90\tp99\tp99.9\tmax\terrors\t")
	for _, p := range r.Phases {
		rate := p.AckedEventsPerS
		if p.Accounting != nil {
			rate = p.DeliveredEventsPerS
		}
		errs := p.TransportErrors
		for _, n := range p.RejectedEvents {
			errs += n
		}
		l := p.Latency
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t\n", p.Name, p.Requests, p.Events, p.RequestsPerS, rate,
			micros(l.P50), micros(l.P90), micros(l.P99), micros(l.P999), micros(l.Max), errs)
	}
	_ = tw.Flush()
	from := "the send (closed loop: each connection waits for its answer)"
	if c.Mode == "open" {
		from = "the scheduled start (open loop, coordinated omission corrected)"
	}
	ew.printf("req/s: 2xx answers; events/s: acknowledged (baseline), delivered to Kafka (gateway); latency from %s; errors: events rejected + requests unanswered\n", from)
	for _, p := range r.Phases {
		if p.ServiceTime != nil {
			ew.printf("%s open loop: service time p50 %s p99 %s; send lag behind schedule p50 %s p99 %s max %s\n", p.Name,
				micros(p.ServiceTime.P50), micros(p.ServiceTime.P99), micros(p.ScheduleLag.P50), micros(p.ScheduleLag.P99), micros(p.ScheduleLag.Max))
		}
	}

	for _, p := range r.Phases {
		a := p.Accounting
		if a == nil {
			continue
		}
		ew.printf("\naccounting (%s, events, read back from Kafka)\n", p.Name)
		ew.printf("  sent %d  acknowledged %d  rejected %s  transport errors %d\n", a.Sent, a.Acknowledged, byStatus(a.RejectedByStatus), a.TransportErrors)
		ew.printf("  delivered %d  LOST %d  DUPLICATED %d  ORDER VIOLATIONS %d  keys split %d  delivered unacknowledged %d\n",
			a.Delivered, a.Lost, a.Duplicated, a.OrderViolations, a.KeysSplit, a.DeliveredUnacknowledged)
		complete := "complete"
		if !a.Complete {
			complete = "INCOMPLETE: timed out"
		}
		ew.printf("  read %d records in %.1fs (%s), %d of other runs, %d unreadable\n", a.RecordsRead, a.ReadbackSeconds, complete, a.OtherRecords, a.Unreadable)
		if a.Batches > 0 && a.RecordsRead > 0 {
			from := ""
			if a.BrokersRead > 1 {
				from = fmt.Sprintf(", read from %d brokers", a.BrokersRead)
			}
			ew.printf("  in Kafka: %d batches of %.1f records on average, %.0f B per record as stored (%s), %.0f B decompressed%s\n",
				a.Batches, float64(a.RecordsRead)/float64(a.Batches), float64(a.BatchBytes)/float64(a.RecordsRead),
				strings.Join(a.Codecs, ", "), float64(a.BatchBytesUncompressed)/float64(a.RecordsRead), from)
		}
		if m := p.GatewayMetrics; m != nil {
			ew.printf("  gateway's own counters: accepted %.0f, produced %.0f, delivered %.0f, failed %.0f, lost %.0f\n",
				m["beacongate_events_accepted_total"], m["beacongate_kafka_records_produced_total"],
				m["beacongate_kafka_records_delivered_total"], m["beacongate_kafka_records_failed_total"], m["beacongate_records_lost_total"])
		}
		if p.ExitCode != nil {
			und := "not logged"
			if p.Undelivered != nil {
				und = fmt.Sprint(*p.Undelivered)
			}
			ew.printf("  gateway exit code after SIGTERM %d, undelivered at shutdown %s\n", *p.ExitCode, und)
		}
	}

	ew.printf("\nresources (CPU over the load%s)\n", settleNote(r))
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tphase\tCPU s\tCPU µs/event\tpeak RSS\tmachine busy cores\t")
	for _, p := range r.Phases {
		server := "baseline server"
		if p.Name == "gateway" {
			server = "gateway"
		}
		if p.Server != nil {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.1f\t%s\t\t\n", procLabel(server, p.Server), p.Name, p.Server.CPUSeconds, p.ServerCPUMicrosPerEvent, mib(p.Server.PeakRSSBytes))
			for _, t := range p.Server.Threads {
				fmt.Fprintf(tw, "of it %s (%s)\t%s\t%.2f\t%.1f\t\t\t\n", t.Group, threadCount(t.Threads), p.Name, t.CPUSeconds, p.threadMicrosPerEvent(t))
			}
		}
		if p.Broker != nil {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.1f\t%s\t\t\n", procLabel("broker", p.Broker), p.Name, p.Broker.CPUSeconds, p.BrokerCPUMicrosPerEvent, mib(p.Broker.PeakRSSBytes))
		}
		fmt.Fprintf(tw, "harness\t%s\t%.2f\t%.1f\t%s\t%s\t\n", p.Name, p.Harness.CPUSeconds, p.HarnessCPUMicrosPerEvent, mib(p.Harness.PeakRSSBytes), busyCores(r, p))
	}
	_ = tw.Flush()

	if q := r.Ratios; q != nil {
		ew.printf("\nratios (gateway / baseline, same load, same machine)\n")
		ew.printf("  throughput     %.3f  (gateway delivered events/s / baseline acknowledged events/s)\n", q.Throughput)
		ew.printf("  CPU per event  %.2f   (gateway CPU µs per delivered event / baseline server CPU µs per acknowledged event)\n", q.CPUPerEvent)
		if q.CPUPerEventGoThreads > 0 {
			ew.printf("    Go threads   %.2f   (the same without librdkafka's threads and the flush thread)\n", q.CPUPerEventGoThreads)
		}
		ew.printf("  p99 latency    %.2f\n", q.LatencyP99)
	}
	if len(r.Problems) == 0 {
		ew.printf("\nproblems: none\n")
	} else {
		ew.printf("\nPROBLEMS\n")
		for _, s := range r.Problems {
			ew.printf("  - %s\n", s)
		}
	}
	if len(r.Notes) > 0 {
		ew.printf("notes\n")
		for _, s := range r.Notes {
			ew.printf("  - %s\n", s)
		}
	}
	return ew.err
}

// procLabel names a measured process: "gateway (pid 12, beacongate)".
func procLabel(role string, u *ProcessUsage) string {
	if u.Command == "" {
		return fmt.Sprintf("%s (pid %d)", role, u.PID)
	}
	return fmt.Sprintf("%s (pid %d, %s)", role, u.PID, u.Command)
}

// busyCores is "1.98 of 2 (others 0.12)": the machine's CPU in use
// during the phase's load, and how much of it was not this run's.
func busyCores(r *Report, p *Phase) string {
	s := fmt.Sprintf("%.2f of %d", p.MachineBusyCores, r.CPUs)
	if p.Server != nil {
		s += fmt.Sprintf(" (others %.2f)", p.OtherCores)
	}
	return s
}

func loadLine(c RunConfig) string {
	s := fmt.Sprintf("%s loop, %d connections, %gs per phase", c.Mode, c.Conns, c.DurationSeconds)
	if c.Mode == "open" {
		s = fmt.Sprintf("open loop at %.0f requests/s (%.0f events/s), %d connections, %gs per phase",
			c.RateRequestsPerS, c.RateRequestsPerS*c.EventsPerRequest, c.Conns, c.DurationSeconds)
	}
	if c.Requests > 0 {
		s += fmt.Sprintf(" or %d requests", c.Requests)
	}
	if c.Rounds > 1 {
		s += fmt.Sprintf(", baseline and gateway interleaved in %d rounds of %gs", c.Rounds, c.DurationSeconds/float64(c.Rounds))
	}
	return s
}

func settleNote(r *Report) string {
	for _, p := range r.Phases {
		if p.SettleSeconds >= 0.01 {
			return fmt.Sprintf("; the gateway's and broker's also over the %.2fs until the producer delivered everything", p.SettleSeconds)
		}
	}
	return ""
}

func byStatus(m map[string]int64) string {
	if len(m) == 0 {
		return "0"
	}
	codes := make([]string, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	var b strings.Builder
	for i, c := range codes {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%d", c, m[c])
	}
	return b.String()
}

// micros formats a latency in µs with a unit that keeps 3 digits.
func micros(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1_000_000:
		return fmt.Sprintf("%.3gms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.3gs", float64(us)/1e6)
	}
}

func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// errWriter keeps the first write error, so the report code stays flat.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) { fmt.Fprintf(e, format, args...) }
