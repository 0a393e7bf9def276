// Package bench is the load-test harness behind beacongate-bench
// (docs/performance.md): it tells a team how many gateways their traffic needs, and whether
// the gateway lost anything on the way.
//
// A run drives the gateway with traffic like a real front's (a mix of
// tracking-pixel GETs, sendBeacon POSTs and JSON batches, events of a
// configurable mean size, many keep-alive connections), either as fast as
// it goes (closed loop) or at a fixed arrival rate with latency counted
// from each request's scheduled start (open loop, free of coordinated
// omission). Every event carries the run id and a per-user sequence
// number; after the load the harness reads the topic back from Kafka and
// accounts for each event: delivered, lost, duplicated, out of order.
// It measures the CPU and memory of the gateway (and of itself) from
// /proc, and with a baseline runs the same load first against a
// do-nothing HTTP server, because on a shared machine the
// gateway/baseline ratios are the figures that carry over.
//
// Run is the whole run; Config says what to run; the Report comes back
// and is also written as text, JSON and a self-contained HTML page.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Run runs the benchmark c describes and writes its reports. The error
// is for a run that could not be carried out; what the run found (lost
// events, a failed shutdown) is in Report.Problems.
func Run(ctx context.Context, c Config) (*Report, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	c = c.withDefaults()
	log := func(format string, args ...any) { fmt.Fprintf(c.Log, "beacongate-bench: "+format+"\n", args...) }
	rid, err := newRunID()
	if err != nil {
		return nil, err
	}
	tr := newTraffic(rid, c)
	rep := &Report{
		RunID: rid, Started: time.Now().UTC().Truncate(time.Second), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(),
		Config: RunConfig{
			Mode: c.Mode, Conns: c.Conns, DurationSeconds: c.Duration.Seconds(), Requests: c.Requests,
			Preset: c.Preset, Mix: c.Mix, EventBytes: c.EventBytes, BatchEvents: c.BatchEvents,
			EventsPerRequest: tr.eventsPerRequest(), Keys: c.Keys, Seed: c.Seed, Target: c.URL,
			Spawned: c.Spawn, Topic: c.Topic, Broker: c.Brokers, Rounds: c.Rounds,
		},
		Problems: []string{}, Notes: []string{},
	}
	if c.Mode == "open" {
		rep.Config.RateRequestsPerS = c.Rate
	}
	if c.Spawn {
		rep.Config.GatewayBin = c.GatewayBin
		rep.Gateway = gatewayVersion(ctx, c.GatewayBin)
		rep.Config.Broker = "separate process"
		if c.BrokerNodes > 1 {
			rep.Config.Broker = fmt.Sprintf("separate process, %d nodes", c.BrokerNodes)
		}
		if c.EmbeddedBroker {
			rep.Config.Broker = "in the gateway process"
		}
	}
	log("run %s: %s loop, %d conns, %v per phase, mix %s, events ~%d B, %.1f events/request",
		rid, c.Mode, c.Conns, c.Duration, c.Mix, c.EventBytes, tr.eventsPerRequest())

	if !c.Spawn {
		// Before anything runs: a remote target is refused up front.
		if _, err := checkTarget(ctx, c.URL, c.AllowRemote); err != nil {
			return nil, err
		}
	}
	switch {
	case c.Baseline && c.Rounds > 1:
		base, gw, err := interleaved(ctx, c, tr, rep, log)
		if err != nil {
			return nil, err
		}
		rep.Phases = append(rep.Phases, base, gw)
	default:
		if c.Baseline {
			p, err := baselinePhase(ctx, c, tr, log)
			if err != nil {
				return nil, err
			}
			rep.Phases = append(rep.Phases, p)
		}
		p, err := gatewayPhase(ctx, c, tr, rep, log)
		if err != nil {
			return nil, err
		}
		rep.Phases = append(rep.Phases, p)
	}
	rep.finish()

	if err := writeText(c.Out, rep); err != nil {
		return rep, fmt.Errorf("writing the text report: %w", err)
	}
	var errs []error
	if c.JSONPath != "-" {
		errs = append(errs, writeFile(c.JSONPath, rep, writeJSON))
		log("JSON report: %s", c.JSONPath)
	}
	if c.HTMLPath != "-" {
		errs = append(errs, writeFile(c.HTMLPath, rep, writeHTML))
		log("HTML report: %s", c.HTMLPath)
	}
	return rep, errors.Join(errs...)
}

// newRunID is 12 random hex digits: short, because every event carries
// it, and unique enough that runs sharing a topic never mix.
func newRunID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a run id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// serversDone records the server's and the broker's CPU since the load
// started; called after the settle wait, so delivery work counts.
func (m *meters) serversDone(p *Phase) {
	p.Server, p.Broker = m.server.usageSince(), m.broker.usageSince()
}

// cpuPerEvent divides the CPU figures by events (delivered, or
// acknowledged when not read back).
func (p *Phase) cpuPerEvent(events int64) {
	if events <= 0 {
		return
	}
	per := func(cpuSeconds float64) float64 { return cpuSeconds * 1e6 / float64(events) }
	if p.Server != nil {
		p.ServerCPUMicrosPerEvent = per(p.Server.CPUSeconds)
	}
	if p.Broker != nil {
		p.BrokerCPUMicrosPerEvent = per(p.Broker.CPUSeconds)
	}
	p.HarnessCPUMicrosPerEvent = per(p.Harness.CPUSeconds)
}

// threadMicrosPerEvent is t's share of the server's CPU per event.
func (p *Phase) threadMicrosPerEvent(t ThreadCPU) float64 {
	if p.Server == nil || p.Server.CPUSeconds <= 0 {
		return 0
	}
	return p.ServerCPUMicrosPerEvent * t.CPUSeconds / p.Server.CPUSeconds
}

// baselinePhase drives the do-nothing server, a child process.
func baselinePhase(ctx context.Context, c Config, tr *traffic, log func(string, ...any)) (*Phase, error) {
	self, err := selfBin(c)
	if err != nil {
		return nil, err
	}
	srv, addr, err := startChild("baseline server", self, []string{serveBaselineArg, "127.0.0.1:0"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _, _ = srv.stop(10 * time.Second) }()
	log("baseline: do-nothing server (pid %d) on %s", srv.pid(), addr)
	m := startMeters(srv.pid(), 0)
	l := runLoad(ctx, c, tr, loadTarget{addr: addr, host: addr}, nil)
	p := phaseFromLoad("baseline", "http://"+addr, l, c.Mode == "open")
	m.loadDone(p)
	m.serversDone(p)
	p.cpuPerEvent(p.AckedEvents)
	log("baseline: %d requests, %.0f events/s acknowledged, p99 %d µs", p.Requests, p.AckedEventsPerS, p.Latency.P99)
	return p, ctx.Err()
}

// gatewayPhase drives the gateway (spawned or given), then settles,
// reads back and, when it spawned it, stops it.
func gatewayPhase(ctx context.Context, c Config, tr *traffic, rep *Report, log func(string, ...any)) (*Phase, error) {
	g, err := openGateway(ctx, c, rep, log)
	if err != nil {
		return nil, err
	}
	defer g.close()
	log("gateway: load on %s", g.target)
	m := startMeters(g.pid, g.brokerPID)
	l := runLoad(ctx, c, tr, g.lt, nil)
	p := phaseFromLoad("gateway", g.target, l, c.Mode == "open")
	m.loadDone(p)
	return p, g.finish(ctx, c, tr, rep, log, p, l, func() { m.serversDone(p) })
}

// gatewaySide is the gateway a run drives, spawned with its broker or
// given, with the read-back client opened before the load.
type gatewaySide struct {
	sp             *spawned
	target, admin  string
	brokers        string
	lt             loadTarget
	pid, brokerPID int
	rb             *readback
	before         map[string]float64
}

// openGateway spawns the gateway (or checks the one given), opens the
// read-back and reads the gateway's counters before any load.
func openGateway(ctx context.Context, c Config, rep *Report, log func(string, ...any)) (_ *gatewaySide, err error) {
	g := &gatewaySide{target: c.URL, brokers: c.Brokers, admin: c.AdminURL, pid: c.GatewayPID}
	defer func() {
		if err != nil {
			g.close()
		}
	}()
	if c.Spawn {
		if g.sp, err = spawnGateway(ctx, c, log); err != nil {
			return nil, err
		}
		g.target, g.brokers, g.admin, g.pid = g.sp.httpURL, g.sp.brokers, g.sp.admin, g.sp.gateway.pid()
		if g.sp.broker != nil {
			g.brokerPID = g.sp.broker.pid()
		}
		rep.Config.Target = g.target
	}
	if g.lt, err = checkTarget(ctx, g.target, c.AllowRemote); err != nil {
		return nil, err
	}
	if !c.Spawn {
		// Fail at once, not after a whole phase of transport errors.
		if err := waitReady(ctx, nil, g.target+"/healthz", 0); err != nil {
			return nil, err
		}
	}
	if !c.NoReadback {
		if g.rb, err = openReadback(ctx, g.brokers, c.Topic); err != nil {
			return nil, err
		}
	}
	if g.admin != "" {
		if g.before, err = scrapeMetrics(ctx, g.admin, gatewayCounters); err != nil {
			log("gateway metrics unavailable: %v", err)
			err = nil
		}
	}
	return g, nil
}

// close closes the read-back and stops what openGateway spawned.
func (g *gatewaySide) close() {
	if g.rb != nil {
		g.rb.close()
	}
	if g.sp != nil {
		g.sp.cleanup()
	}
}

// finish settles the gateway after the load l, measures the servers
// (measure), reads back and stops a spawned gateway, filling p.
func (g *gatewaySide) finish(ctx context.Context, c Config, tr *traffic, rep *Report, log func(string, ...any), p *Phase, l *loadResult, measure func()) error {
	if g.admin != "" {
		took, err := settle(ctx, g.admin, c.Settle)
		p.SettleSeconds = took.Seconds()
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("settle: %v", err))
		}
		if after, err := scrapeMetrics(ctx, g.admin, gatewayCounters); err == nil && g.before != nil {
			p.GatewayMetrics = map[string]float64{}
			for _, n := range gatewayCounters {
				p.GatewayMetrics[n] = after[n] - g.before[n]
			}
		}
	}
	// The servers' CPU is read before the read-back: with the broker in
	// the gateway process, serving the read-back would count as the
	// gateway's.
	measure()
	perEvent := p.AckedEvents
	if g.rb != nil {
		ends, err := g.rb.endOffsets(ctx)
		if err != nil {
			return fmt.Errorf("end offsets of topic %q after the run: %w", c.Topic, err)
		}
		t := newTally(tr.rid, l.keys)
		acc := g.rb.read(ctx, t, l.ackedEvents, ends, c.ReadbackTimeout)
		acc.Sent, acc.Acknowledged, acc.TransportErrors = l.events, l.ackedEvents, l.transportEvents
		acc.RejectedByStatus = p.RejectedEvents
		p.Accounting = &acc
		p.DeliveredEventsPerS = float64(acc.Delivered) / p.ElapsedSeconds
		perEvent = acc.Delivered
		log("gateway: read back %d records in %.1fs: %d delivered, %d lost, %d duplicated, %d out of order",
			acc.RecordsRead, acc.ReadbackSeconds, acc.Delivered, acc.Lost, acc.Duplicated, acc.OrderViolations)
	}
	p.cpuPerEvent(perEvent)
	if g.sp != nil {
		code, undelivered, err := g.sp.stopGateway()
		if err != nil {
			rep.Notes = append(rep.Notes, err.Error())
		}
		p.ExitCode = &code
		if undelivered >= 0 {
			p.Undelivered = &undelivered
		}
		log("gateway: stopped with exit code %d", code)
	}
	return ctx.Err()
}

// checkTarget parses the target URL and, unless allowRemote, refuses it
// when it is not on this machine.
func checkTarget(ctx context.Context, target string, allowRemote bool) (loadTarget, error) {
	u, err := url.Parse(target)
	if err != nil {
		return loadTarget{}, fmt.Errorf("target %q: %w", target, err)
	}
	lt := loadTarget{addr: u.Host, host: u.Host}
	if u.Port() == "" {
		lt.addr = net.JoinHostPort(u.Hostname(), "80")
	}
	if !allowRemote {
		if err := checkLoopback(ctx, u.Hostname()); err != nil {
			return loadTarget{}, err
		}
	}
	return lt, nil
}

// checkLoopback refuses a host that resolves to anything but loopback
// addresses: the harness only loads what runs on this machine unless
// told otherwise (-allow-remote).
func checkLoopback(ctx context.Context, host string) error {
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolving target host %q: %w", host, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("target host %q resolves to %s, not a loopback address: refusing to load a remote host without -allow-remote", host, ip.IP)
		}
	}
	return nil
}

// gatewayVersion is what the binary says of itself (`-version`: the
// commit it was built from, "-dirty" if the tree had changes, and the Go
// version), so a report names the commit its figures describe.
func gatewayVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-version").Output()
	if err != nil {
		return fmt.Sprintf("unknown (%s -version: %v)", bin, err)
	}
	return strings.TrimSpace(string(out))
}
