package bench

import (
	"context"
	"fmt"
	"time"
)

// On a shared machine the speed moves by a fifth or more from one minute
// to the next (docs/performance.md), so a baseline phase followed by a
// gateway phase can compare two different machines. With Rounds > 1 the
// two servers run side by side and take turns: the baseline for
// Duration/Rounds, then the gateway, Rounds times; each phase's figures
// are over all of its slices, so a drift weighs on both alike.
//
// Each server's CPU is read from before the first slice to the end of
// the run (the gateway's after it settled), so it includes what the
// server did while the other one was driven: nothing for the baseline; for
// the gateway, its last batches of a slice and any spool replay, which
// are its work. The report notes how much of the gateway's CPU fell in
// the baseline's slices. The harness's and the machine's CPU are summed
// over the phase's own slices.

// interleaved drives the baseline server and the gateway in c.Rounds
// alternating slices and returns the two phases.
func interleaved(ctx context.Context, c Config, tr *traffic, rep *Report, log func(string, ...any)) (base, gw *Phase, err error) {
	self, err := selfBin(c)
	if err != nil {
		return nil, nil, err
	}
	srv, addr, err := startChild("baseline server", self, []string{serveBaselineArg, "127.0.0.1:0"}, true)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _, _ = srv.stop(10 * time.Second) }()
	log("baseline: do-nothing server (pid %d) on %s", srv.pid(), addr)
	g, err := openGateway(ctx, c, rep, log)
	if err != nil {
		return nil, nil, err
	}
	defer g.close()

	slice := c
	slice.Duration = c.Duration / time.Duration(c.Rounds)
	baseTarget := loadTarget{addr: addr, host: addr}
	baseCPU, gwCPU, brokerCPU := snapshotServer(srv.pid()), snapshotServer(g.pid), snapshotProc(g.brokerPID)
	var (
		bl, gl       *loadResult
		bm, gm       sliceMeters
		gwInBaseline float64 // the gateway's CPU seconds during the baseline's slices
	)
	log("interleaving %d rounds of %v: baseline, then gateway on %s", c.Rounds, slice.Duration, g.target)
	for i := 0; i < c.Rounds && ctx.Err() == nil; i++ {
		before := snapshotProc(g.pid)
		b := bm.drive(ctx, slice, tr, baseTarget, srv.pid(), 0, bl)
		if u := before.usageSince(); u != nil {
			gwInBaseline += u.CPUSeconds
		}
		w := gm.drive(ctx, slice, tr, g.lt, g.pid, g.brokerPID, gl)
		log("round %d/%d: baseline %d requests (%.1f µs of CPU each), gateway %d requests (%.1f µs each, within its slice)",
			i+1, c.Rounds, b.requests, bm.lastCPU*1e6/float64(max(1, b.ackedReqs)), w.requests, gm.lastCPU*1e6/float64(max(1, w.ackedReqs)))
		bl, gl = bl.merge(b), gl.merge(w)
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}

	open := c.Mode == "open"
	base = phaseFromLoad("baseline", "http://"+addr, bl, open)
	bm.fill(base)
	base.Server = baseCPU.usageSince()
	base.cpuPerEvent(base.AckedEvents)
	log("baseline: %d requests, %.0f events/s acknowledged, p99 %d µs", base.Requests, base.AckedEventsPerS, base.Latency.P99)

	gw = phaseFromLoad("gateway", g.target, gl, open)
	gm.fill(gw)
	err = g.finish(ctx, c, tr, rep, log, gw, gl, func() { gw.Server, gw.Broker = gwCPU.usageSince(), brokerCPU.usageSince() })
	if err != nil {
		return nil, nil, err
	}
	var gwSeconds float64
	if gw.Server != nil {
		gwSeconds = gw.Server.CPUSeconds
	}
	rep.Notes = append(rep.Notes, interleaveNote(c.Rounds, slice.Duration, gwSeconds, gwInBaseline))
	return base, gw, nil
}

// interleaveNote is the report's note on an interleaved run: the gateway
// used gwSeconds of CPU in all, spilled of them during the baseline's
// slices.
func interleaveNote(rounds int, slice time.Duration, gwSeconds, spilled float64) string {
	note := fmt.Sprintf("baseline and gateway interleaved: %d rounds of %v each; each server's CPU is over the whole run", rounds, slice)
	if gwSeconds <= 0 {
		return note
	}
	share := spilled / gwSeconds
	note += fmt.Sprintf(", the gateway's including %.2fs (%.1f%%) during the baseline's slices", spilled, 100*share)
	if share > spillNote {
		// A backlog (the spool replaying what an overload put there) went
		// on through the baseline's slices: the baseline ran beside it,
		// and the gateway's events/s count events it delivered outside
		// its own slices.
		note += "; that much work competed with the baseline and its deliveries add to the gateway's events/s: use -rounds 1 for a load the gateway cannot keep up with"
	}
	return note
}

// spillNote is the share of the gateway's CPU in the baseline's slices
// past which the report says the interleaving did not separate them.
// Pixels at full load leave about 1% (their last batches of a slice).
const spillNote = 0.05

// sliceMeters adds up the meters of one phase's slices.
type sliceMeters struct {
	elapsed, harnessCPU float64
	busy, other         float64 // core-seconds
	peakRSS, rss        int64
	busySec, otherSec   []float64
	lastCPU             float64 // the server's CPU seconds within the last slice
}

// drive runs one slice of load against target, measured as a phase is,
// going on with the users' states of prev (nil: the first slice).
func (sm *sliceMeters) drive(ctx context.Context, c Config, tr *traffic, target loadTarget, serverPID, brokerPID int, prev *loadResult) *loadResult {
	var keys []*keyState
	if prev != nil {
		keys = prev.keys
	}
	m := startMeters(serverPID, brokerPID)
	l := runLoad(ctx, c, tr, target, keys)
	p := phaseFromLoad("", "", l, false)
	m.loadDone(p)
	m.serversDone(p)
	sm.lastCPU = 0
	if p.Server != nil {
		sm.lastCPU = p.Server.CPUSeconds
	}
	sm.elapsed += p.ElapsedSeconds
	sm.harnessCPU += p.Harness.CPUSeconds
	sm.busy += p.MachineBusyCores * p.ElapsedSeconds
	sm.other += p.OtherCores * p.ElapsedSeconds
	sm.peakRSS = max(sm.peakRSS, p.Harness.PeakRSSBytes)
	sm.rss = p.Harness.RSSBytes
	for _, s := range p.Seconds {
		sm.busySec = append(sm.busySec, s.BusyCores)
		sm.otherSec = append(sm.otherSec, s.OtherCores)
	}
	return l
}

// fill puts the sums into p, built from the merged slices.
func (sm *sliceMeters) fill(p *Phase) {
	p.Harness = ProcessUsage{CPUSeconds: sm.harnessCPU, PeakRSSBytes: sm.peakRSS, RSSBytes: sm.rss}
	if sm.elapsed > 0 {
		p.MachineBusyCores, p.OtherCores = sm.busy/sm.elapsed, sm.other/sm.elapsed
	}
	for i := range p.Seconds {
		if i < len(sm.busySec) {
			p.Seconds[i].BusyCores, p.Seconds[i].OtherCores = sm.busySec[i], sm.otherSec[i]
		}
	}
}

// merge adds the slice o to r (nil: none yet) and returns the sum. The
// per-second windows follow one another; the users' states are o's (the
// same ones, gone on with).
func (r *loadResult) merge(o *loadResult) *loadResult {
	if r == nil {
		return o
	}
	r.elapsed += o.elapsed
	r.add(&o.counts)
	for _, e := range o.errorSamples {
		if len(r.errorSamples) < 5 {
			r.errorSamples = append(r.errorSamples, e)
		}
	}
	r.latency.Merge(o.latency)
	r.service.Merge(o.service)
	r.lag.Merge(o.lag)
	r.windows = append(r.windows, o.windows...)
	r.keys = o.keys
	return r
}
