package bench

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Report is everything one run measured; the text, JSON and HTML reports
// are views of it. Rates are per second of the phase's wall time, CPU is
// user + system time, sizes are bytes, latencies are microseconds.
type Report struct {
	RunID     string    `json:"run_id"`
	Started   time.Time `json:"started"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	// Gateway is the spawned binary's -version line (its commit).
	Gateway string    `json:"gateway_version,omitempty"`
	Config  RunConfig `json:"config"`
	Phases  []*Phase  `json:"phases"`
	Ratios  *Ratios   `json:"ratios,omitempty"`
	// Problems are findings that fail the run: lost, duplicated or
	// reordered events, a gateway that did not exit cleanly, an
	// incomplete read-back.
	Problems []string `json:"problems"`
	// Notes say how to read the figures (what limited them, what they
	// include).
	Notes []string `json:"notes"`
}

// RunConfig is the effective configuration, as reported.
type RunConfig struct {
	Mode             string  `json:"mode"`
	RateRequestsPerS float64 `json:"rate_requests_per_s,omitempty"`
	Conns            int     `json:"conns"`
	DurationSeconds  float64 `json:"duration_s"`
	Requests         int64   `json:"requests_limit,omitempty"`
	Preset           string  `json:"preset"`
	Mix              Mix     `json:"mix_by_request"`
	EventBytes       int     `json:"event_bytes_mean"`
	BatchEvents      int     `json:"batch_events"`
	EventsPerRequest float64 `json:"events_per_request"`
	Keys             int     `json:"keys"`
	Seed             int64   `json:"seed"`
	Target           string  `json:"target"`
	Spawned          bool    `json:"spawned"`
	GatewayBin       string  `json:"gateway_bin,omitempty"`
	Broker           string  `json:"broker"` // where the broker ran
	Topic            string  `json:"topic"`
	Rounds           int     `json:"rounds,omitempty"` // > 1: baseline and gateway interleaved
}

// Phase is one target under load: "baseline" or "gateway".
type Phase struct {
	Name            string  `json:"name"`
	Target          string  `json:"target"`
	ElapsedSeconds  float64 `json:"elapsed_s"`
	Requests        int64   `json:"requests"`
	Events          int64   `json:"events"`
	AckedRequests   int64   `json:"acked_requests"`
	AckedEvents     int64   `json:"acked_events"`
	TransportErrors int64   `json:"transport_errors"` // requests
	// RejectedEvents counts events answered with a non-2xx status (or
	// listed as rejected in a batch answer), by status code.
	RejectedEvents map[string]int64 `json:"rejected_events"`
	ErrorSamples   []string         `json:"error_samples,omitempty"`
	// BehindSchedule: open-loop requests still unsent at the end because
	// the target (or the generator) could not keep up.
	BehindSchedule int64 `json:"behind_schedule,omitempty"`

	RequestsPerS        float64 `json:"requests_per_s"`                   // answered 2xx
	AckedEventsPerS     float64 `json:"acked_events_per_s"`               // acknowledged
	DeliveredEventsPerS float64 `json:"delivered_events_per_s,omitempty"` // found in Kafka (gateway)

	// Latency is from the scheduled start in open loop (coordinated
	// omission corrected), from the send in closed loop.
	Latency     Latency  `json:"latency_us"`
	ServiceTime *Latency `json:"service_time_us,omitempty"` // open loop: from the actual send
	ScheduleLag *Latency `json:"schedule_lag_us,omitempty"` // open loop: actual send - scheduled
	Seconds     []Second `json:"seconds"`

	Server  *ProcessUsage `json:"server,omitempty"` // the gateway or the baseline server
	Broker  *ProcessUsage `json:"broker,omitempty"` // the separate development broker
	Harness ProcessUsage  `json:"harness"`          // this load generator, during the load
	// MachineBusyCores is the whole machine's CPU in use during the load,
	// in cores: at the core count, the measurement was CPU-bound.
	MachineBusyCores float64 `json:"machine_busy_cores"`
	// OtherCores is the part of MachineBusyCores not used by this run's
	// processes (other work on a shared machine, the kernel's share of
	// networking): when it is high, the phase's figures are depressed.
	OtherCores float64 `json:"other_cores"`
	// CPU per event: the server's CPU over the load (and the settle wait)
	// per delivered event (gateway; acknowledged when not read back) or
	// acknowledged event (baseline).
	ServerCPUMicrosPerEvent  float64 `json:"server_cpu_us_per_event"`
	BrokerCPUMicrosPerEvent  float64 `json:"broker_cpu_us_per_event,omitempty"`
	HarnessCPUMicrosPerEvent float64 `json:"harness_cpu_us_per_event"`
	SettleSeconds            float64 `json:"settle_s,omitempty"`

	Accounting *Accounting `json:"accounting,omitempty"`
	// GatewayMetrics are the gateway's own counters over the phase.
	GatewayMetrics map[string]float64 `json:"gateway_metrics,omitempty"`
	ExitCode       *int               `json:"exit_code,omitempty"`   // spawned gateway, after SIGTERM
	Undelivered    *int               `json:"undelivered,omitempty"` // from its shutdown log
}

// Latency is a histogram summary in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p99_9"`
	Max   int64   `json:"max"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	return Latency{
		Count: h.TotalCount(), Mean: h.Mean(),
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), Max: h.Max(),
	}
}

// Second is one second of a phase, by completion time.
type Second struct {
	T        int     `json:"t"`
	Requests int64   `json:"requests"`
	Events   int64   `json:"events"`
	Acked    int64   `json:"acked_events"`
	Errors   int64   `json:"transport_errors"`
	Latency  Latency `json:"latency_us"`
	// The machine's CPU in that second, in cores: all of it, and what was
	// not this run's processes'.
	BusyCores  float64 `json:"busy_cores"`
	OtherCores float64 `json:"other_cores"`
}

// ProcessUsage is a process's CPU over a phase and its memory.
type ProcessUsage struct {
	PID          int     `json:"pid,omitempty"`
	Command      string  `json:"command,omitempty"` // from /proc/<pid>/comm
	CPUSeconds   float64 `json:"cpu_s"`
	PeakRSSBytes int64   `json:"peak_rss_bytes,omitempty"` // VmHWM: over the process's life
	RSSBytes     int64   `json:"rss_bytes,omitempty"`
	// Threads are the named parts of CPUSeconds (librdkafka's threads,
	// the flush thread: threads.go); the rest ran on the Go runtime's
	// threads (Go code, and the C code it calls).
	Threads []ThreadCPU `json:"threads,omitempty"`
}

// Ratios compare the gateway with the baseline under the same load.
type Ratios struct {
	// Throughput is the gateway's delivered events/s over the baseline's
	// acknowledged events/s (the same unit; for a pixel-only load also
	// requests/s over requests/s). 1 would be "as fast as doing nothing".
	Throughput float64 `json:"throughput"`
	// CPUPerEvent is the gateway's CPU µs per delivered event over the
	// baseline server's CPU µs per acknowledged event.
	CPUPerEvent float64 `json:"cpu_per_event"`
	// LatencyP99 is the gateway's p99 over the baseline's.
	LatencyP99 float64 `json:"latency_p99"`
	// CPUPerEventGoThreads is CPUPerEvent without the gateway's named
	// threads (librdkafka's, the flush thread: threads.go): what the HTTP
	// work, the handler and the calls into librdkafka cost on the Go
	// runtime's threads, against doing nothing. 0 when not measured.
	CPUPerEventGoThreads float64 `json:"cpu_per_event_go_threads,omitempty"`
}

// phaseFromLoad fills a Phase with what the load measured.
func phaseFromLoad(name, target string, l *loadResult, open bool) *Phase {
	p := &Phase{
		Name: name, Target: target, ElapsedSeconds: l.elapsed.Seconds(),
		Requests: l.requests, Events: l.events, AckedRequests: l.ackedReqs, AckedEvents: l.ackedEvents,
		TransportErrors: l.transportErrors, RejectedEvents: map[string]int64{},
		ErrorSamples: l.errorSamples, BehindSchedule: l.behind,
		Latency: summarize(l.latency),
	}
	for s, n := range l.rejected {
		p.RejectedEvents[strconv.Itoa(s)] = n
	}
	if secs := l.elapsed.Seconds(); secs > 0 {
		p.RequestsPerS = float64(l.ackedReqs) / secs
		p.AckedEventsPerS = float64(l.ackedEvents) / secs
	}
	if open {
		s, g := summarize(l.service), summarize(l.lag)
		p.ServiceTime, p.ScheduleLag = &s, &g
	}
	for i, w := range l.windows {
		p.Seconds = append(p.Seconds, Second{T: i, Requests: w.requests, Events: w.events, Acked: w.acked, Errors: w.errors, Latency: summarize(w.hist)})
	}
	return p
}

// finish computes the ratios and collects problems and notes.
func (r *Report) finish() {
	var base, gw *Phase
	for _, p := range r.Phases {
		switch p.Name {
		case "baseline":
			base = p
		case "gateway":
			gw = p
		}
	}
	if gw == nil {
		return
	}
	if a := gw.Accounting; a != nil {
		if a.Lost > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d acknowledged events are not in Kafka (e.g. %v)", a.Lost, a.LostSamples))
		}
		if a.Duplicated > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d events are in Kafka more than once", a.Duplicated))
		}
		if a.OrderViolations > 0 || a.KeysSplit > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("per-key order broken: %d events behind a later one, %d keys on several partitions", a.OrderViolations, a.KeysSplit))
		}
		if a.Unreadable > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d records of this run could not be read as the events sent", a.Unreadable))
		}
		if !a.Complete && a.Lost == 0 {
			r.Problems = append(r.Problems, "the read-back did not reach the end of every partition in time")
		}
	}
	if gw.ExitCode != nil && *gw.ExitCode != 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("the gateway exited with code %d after SIGTERM", *gw.ExitCode))
	}
	if gw.Undelivered != nil && *gw.Undelivered > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("the gateway logged %d undelivered records at shutdown", *gw.Undelivered))
	}
	if m := gw.GatewayMetrics; m != nil && m["beacongate_http_panics_total"] > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("the gateway recovered %v handler panics", m["beacongate_http_panics_total"]))
	}
	for _, p := range r.Phases {
		if p.AckedRequests == 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: no request was acknowledged", p.Name))
		}
		if p.TransportErrors > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: %d requests got no HTTP answer (%v)", p.Name, p.TransportErrors, p.ErrorSamples))
		}
		if len(p.RejectedEvents) > 0 {
			codes := make([]string, 0, len(p.RejectedEvents))
			for c := range p.RejectedEvents {
				codes = append(codes, c)
			}
			sort.Strings(codes)
			r.Notes = append(r.Notes, fmt.Sprintf("%s: events rejected with status %v", p.Name, codes))
		}
		if p.BehindSchedule > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: %d scheduled requests were never sent: the open loop fell behind its rate", p.Name, p.BehindSchedule))
		}
		if p.OtherCores > 0.2 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: %.2f cores were busy with other work than this run's processes (other programs on a shared machine, kernel networking): the phase's figures are depressed; compare phases run under the same conditions",
				p.Name, p.OtherCores))
		}
		if p.MachineBusyCores > 0.9*float64(r.CPUs) {
			share := 0.0
			if p.MachineBusyCores > 0 {
				share = p.Harness.CPUSeconds / (p.MachineBusyCores * p.ElapsedSeconds)
			}
			r.Notes = append(r.Notes, fmt.Sprintf("%s: the machine was CPU-bound (%.2f of %d cores busy); the load generator itself used %.0f%% of the busy CPU, so absolute rates are a floor and the ratios are the figures to trust",
				p.Name, p.MachineBusyCores, r.CPUs, 100*share))
		}
	}
	if r.Config.Broker == "in the gateway process" {
		r.Notes = append(r.Notes, "the development broker ran inside the gateway process: the gateway's CPU and memory include the broker's")
	}
	if base == nil || base.AckedEventsPerS == 0 || base.ServerCPUMicrosPerEvent == 0 {
		return
	}
	gwRate := gw.DeliveredEventsPerS
	if gw.Accounting == nil {
		gwRate = gw.AckedEventsPerS
	}
	r.Ratios = &Ratios{Throughput: gwRate / base.AckedEventsPerS}
	if gw.ServerCPUMicrosPerEvent > 0 {
		r.Ratios.CPUPerEvent = gw.ServerCPUMicrosPerEvent / base.ServerCPUMicrosPerEvent
		if s := gw.Server; s != nil && len(s.Threads) > 0 {
			named := 0.0
			for _, t := range s.Threads {
				named += gw.threadMicrosPerEvent(t)
			}
			r.Ratios.CPUPerEventGoThreads = (gw.ServerCPUMicrosPerEvent - named) / base.ServerCPUMicrosPerEvent
		}
	}
	if base.Latency.P99 > 0 {
		r.Ratios.LatencyP99 = float64(gw.Latency.P99) / float64(base.Latency.P99)
	}
}
