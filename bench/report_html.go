package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// writeHTML writes the report as one self-contained page: inline CSS and
// inline SVG charts, no script, no external fonts or styles, so it can
// be attached to an issue or opened offline years later.
func writeHTML(w io.Writer, r *Report) error {
	var b strings.Builder
	e := html.EscapeString
	c := r.Config
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>beacongate-bench %s</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
.bad{color:#b00;font-weight:bold}.ok{color:#080;font-weight:bold}.small{color:#666;font-size:.9em}
svg{background:#fff;border:1px solid #ddd;margin:.5em 0}
</style></head><body>
`, e(r.RunID))
	fmt.Fprintf(&b, "<h1>beacongate-bench run %s</h1>\n<p class=small>%s, %s, %d CPUs</p>\n",
		e(r.RunID), e(r.Started.Format("2006-01-02 15:04:05Z")), e(r.GoVersion), r.CPUs)
	if r.Gateway != "" {
		fmt.Fprintf(&b, "<p class=small>gateway %s</p>\n", e(r.Gateway))
	}
	// The target without its scheme: the page names no URL, so nothing in
	// it can look like an external reference.
	target := strings.TrimPrefix(c.Target, "http://")
	if c.Spawned {
		target += fmt.Sprintf(" (spawned %s; broker: %s)", c.GatewayBin, c.Broker)
	}
	fmt.Fprintf(&b, "<p>Load: %s.<br>Traffic: mix %s (by request), events ~%d B (±50%%), %d events/batch, %.2f events/request, %d keys.<br>Target: %s, topic %s.</p>\n",
		e(loadLine(c)), e(c.Mix.String()), c.EventBytes, c.BatchEvents, c.EventsPerRequest, c.Keys, e(target), e(c.Topic))

	if len(r.Problems) == 0 {
		b.WriteString("<p class=ok>No problems: nothing lost, duplicated or reordered.</p>\n")
	} else {
		b.WriteString("<h2 class=bad>Problems</h2><ul>\n")
		for _, s := range r.Problems {
			fmt.Fprintf(&b, "<li class=bad>%s</li>\n", e(s))
		}
		b.WriteString("</ul>\n")
	}

	b.WriteString("<h2>Throughput and latency</h2>\n<table><tr><th>phase</th><th>requests</th><th>events</th><th>req/s</th><th>events/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>transport errors</th></tr>\n")
	for _, p := range r.Phases {
		rate := p.AckedEventsPerS
		if p.Accounting != nil {
			rate = p.DeliveredEventsPerS
		}
		l := p.Latency
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td><td>%d</td><td>%.0f</td><td>%.0f</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td></tr>\n",
			e(p.Name), p.Requests, p.Events, p.RequestsPerS, rate, micros(l.P50), micros(l.P90), micros(l.P99), micros(l.P999), micros(l.Max), p.TransportErrors)
	}
	b.WriteString("</table>\n<p class=small>events/s: acknowledged (baseline), delivered to Kafka (gateway).</p>\n")

	if q := r.Ratios; q != nil {
		fmt.Fprintf(&b, `<h2>Gateway / baseline</h2>
<table><tr><th>ratio</th><th>value</th><th>units</th></tr>
<tr><td>throughput</td><td>%.3f</td><td>delivered events/s ÷ baseline acknowledged events/s</td></tr>
<tr><td>CPU per event</td><td>%.2f</td><td>gateway CPU µs per delivered event ÷ baseline server CPU µs per acknowledged event</td></tr>
<tr><td>p99 latency</td><td>%.2f</td><td></td></tr>
`, q.Throughput, q.CPUPerEvent, q.LatencyP99)
		if q.CPUPerEventGoThreads > 0 {
			fmt.Fprintf(&b, "<tr><td>CPU per event, Go threads</td><td>%.2f</td><td>the same without librdkafka's threads and the flush thread</td></tr>\n", q.CPUPerEventGoThreads)
		}
		b.WriteString("</table>\n")
	}

	for _, p := range r.Phases {
		a := p.Accounting
		if a == nil {
			continue
		}
		cls := func(n int64) string {
			if n == 0 {
				return "ok"
			}
			return "bad"
		}
		fmt.Fprintf(&b, `<h2>Accounting (%s, events read back from Kafka)</h2>
<table><tr><th>sent</th><th>acknowledged</th><th>rejected</th><th>transport errors</th><th>delivered</th><th>lost</th><th>duplicated</th><th>order violations</th><th>keys split</th><th>delivered unacknowledged</th></tr>
<tr><td>%d</td><td>%d</td><td>%s</td><td>%d</td><td>%d</td><td class=%s>%d</td><td class=%s>%d</td><td class=%s>%d</td><td class=%s>%d</td><td>%d</td></tr></table>
<p class=small>Read %d records in %.1fs (complete: %v); %d of other runs; %d unreadable. In Kafka: %d batches, %d bytes as stored (%s), %d decompressed.</p>
`, e(p.Name), a.Sent, a.Acknowledged, e(byStatus(a.RejectedByStatus)), a.TransportErrors, a.Delivered,
			cls(a.Lost), a.Lost, cls(a.Duplicated), a.Duplicated, cls(a.OrderViolations), a.OrderViolations, cls(a.KeysSplit), a.KeysSplit,
			a.DeliveredUnacknowledged, a.RecordsRead, a.ReadbackSeconds, a.Complete, a.OtherRecords, a.Unreadable,
			a.Batches, a.BatchBytes, e(strings.Join(a.Codecs, ", ")), a.BatchBytesUncompressed)
	}

	b.WriteString("<h2>Resources</h2>\n<table><tr><th>process</th><th>phase</th><th>CPU s</th><th>CPU µs/event</th><th>peak RSS</th></tr>\n")
	for _, p := range r.Phases {
		server := "baseline server"
		if p.Name == "gateway" {
			server = "gateway"
		}
		if p.Server != nil {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%.2f</td><td>%.1f</td><td>%s</td></tr>\n", e(procLabel(server, p.Server)), e(p.Name), p.Server.CPUSeconds, p.ServerCPUMicrosPerEvent, mib(p.Server.PeakRSSBytes))
			for _, t := range p.Server.Threads {
				fmt.Fprintf(&b, "<tr><td>of it %s (%s)</td><td>%s</td><td>%.2f</td><td>%.1f</td><td></td></tr>\n", e(t.Group), threadCount(t.Threads), e(p.Name), t.CPUSeconds, p.threadMicrosPerEvent(t))
			}
		}
		if p.Broker != nil {
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%.2f</td><td>%.1f</td><td>%s</td></tr>\n", e(procLabel("broker", p.Broker)), e(p.Name), p.Broker.CPUSeconds, p.BrokerCPUMicrosPerEvent, mib(p.Broker.PeakRSSBytes))
		}
		fmt.Fprintf(&b, "<tr><td>harness (load generator)</td><td>%s</td><td>%.2f</td><td>%.1f</td><td>%s</td></tr>\n", e(p.Name), p.Harness.CPUSeconds, p.HarnessCPUMicrosPerEvent, mib(p.Harness.PeakRSSBytes))
	}
	b.WriteString("</table>\n<p class=small>Machine busy cores during the load: ")
	for i, p := range r.Phases {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", e(p.Name), e(busyCores(r, p)))
	}
	b.WriteString(".</p>\n")

	b.WriteString("<h2>Throughput per second</h2>\n")
	var tput []series
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	for i, p := range r.Phases {
		var y []float64
		for _, s := range fullSeconds(p) {
			y = append(y, float64(s.Acked))
		}
		tput = append(tput, series{name: p.Name, color: colors[i%len(colors)], y: y})
	}
	lineChart(&b, "acknowledged events per second (by completion)", false, formatCount, tput)

	// The machine's CPU per second: a dip in throughput that lines up with
	// other work on the machine is the machine's, not the gateway's.
	b.WriteString("<h2>Machine CPU per second</h2>\n")
	var cpu []series
	for i, p := range r.Phases {
		var busy, other []float64
		for _, s := range fullSeconds(p) {
			busy = append(busy, s.BusyCores)
			other = append(other, s.OtherCores)
		}
		cpu = append(cpu, series{name: p.Name + " busy", color: colors[i%len(colors)], y: busy},
			series{name: p.Name + " others", color: colors[i%len(colors)], dashed: true, y: other})
	}
	lineChart(&b, fmt.Sprintf("cores busy (of %d), and busy with other work than this run", r.CPUs), false, func(v float64) string { return fmt.Sprintf("%.1f", v) }, cpu)

	for _, p := range r.Phases {
		fmt.Fprintf(&b, "<h2>Latency per second: %s</h2>\n", e(p.Name))
		pick := []struct {
			name  string
			color string
			f     func(Latency) int64
		}{
			{"p50", "#2ca02c", func(l Latency) int64 { return l.P50 }},
			{"p90", "#1f77b4", func(l Latency) int64 { return l.P90 }},
			{"p99", "#ff7f0e", func(l Latency) int64 { return l.P99 }},
			{"p99.9", "#d62728", func(l Latency) int64 { return l.P999 }},
			{"max", "#7f7f7f", func(l Latency) int64 { return l.Max }},
		}
		var ss []series
		for _, k := range pick {
			var y []float64
			for _, s := range fullSeconds(p) {
				y = append(y, float64(k.f(s.Latency)))
			}
			ss = append(ss, series{name: k.name, color: k.color, y: y})
		}
		lineChart(&b, p.Name+" latency (log scale)", true, func(v float64) string { return micros(int64(v)) }, ss)
	}

	if len(r.Notes) > 0 {
		b.WriteString("<h2>Notes</h2><ul>\n")
		for _, s := range r.Notes {
			fmt.Fprintf(&b, "<li>%s</li>\n", e(s))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// fullSeconds drops the last, partial second (the load stops inside it),
// which would draw a false drop at the end of every chart.
func fullSeconds(p *Phase) []Second {
	n := int(p.ElapsedSeconds)
	if n < 1 {
		n = 1
	}
	if n > len(p.Seconds) {
		n = len(p.Seconds)
	}
	return p.Seconds[:n]
}

type series struct {
	name   string
	color  string
	dashed bool
	y      []float64 // one point per second
}

func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// lineChart draws series against seconds as an inline SVG (HTML5 needs
// no namespace declaration for it, so the page names no URL at all).
func lineChart(b *strings.Builder, title string, logY bool, label func(float64) string, ss []series) {
	const (
		width, height            = 900, 300
		left, right, top, bottom = 70, 170, 30, 40
		plotW, plotH             = width - left - right, height - top - bottom
	)
	n, lo, hi := 0, math.Inf(1), 0.0
	for _, s := range ss {
		n = max(n, len(s.y))
		for _, v := range s.y {
			if v > 0 {
				lo = math.Min(lo, v)
			}
			hi = math.Max(hi, v)
		}
	}
	fmt.Fprintf(b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`+"\n",
		width, height, width, height, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%d" y="18" font-size="13" font-family="sans-serif">%s</text>`+"\n", left, html.EscapeString(title))
	if n == 0 || hi == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" font-family="sans-serif">no data</text></svg>`+"\n", left, top+plotH/2)
		return
	}
	// y maps a value to a pixel row.
	var y func(float64) float64
	var ticks []float64
	if logY {
		d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if d1 == d0 {
			d1++
		}
		y = func(v float64) float64 {
			v = math.Max(v, math.Pow(10, d0))
			return top + plotH - (math.Log10(v)-d0)/(d1-d0)*plotH
		}
		for d := d0; d <= d1; d++ {
			ticks = append(ticks, math.Pow(10, d))
		}
	} else {
		step := niceStep(hi / 5)
		ceil := math.Ceil(hi/step) * step
		y = func(v float64) float64 { return top + plotH - v/ceil*plotH }
		for v := 0.0; v <= ceil+step/2; v += step {
			ticks = append(ticks, v)
		}
	}
	x := func(i int) float64 {
		if n == 1 {
			return left + plotW/2
		}
		return left + float64(i)/float64(n-1)*plotW
	}
	for _, t := range ticks {
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" font-size="11" font-family="sans-serif" text-anchor="end">%s</text>`+"\n",
			left, left+plotW, y(t), y(t), left-6, y(t)+4, html.EscapeString(label(t)))
	}
	xstep := max(1, n/10)
	for i := 0; i < n; i += xstep {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11" font-family="sans-serif" text-anchor="middle">%ds</text>`+"\n", x(i), top+plotH+16, i)
	}
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", left, top, plotW, plotH)
	for k, s := range ss {
		var pts strings.Builder
		for i, v := range s.y {
			if logY && v <= 0 {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(i), y(v))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`+"\n", s.color, dash, strings.TrimSpace(pts.String()))
		if len(s.y) == 1 {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(0), y(s.y[0]), s.color)
		}
		ly := top + 10 + k*18
		fmt.Fprintf(b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="3"%s/><text x="%d" y="%d" font-size="12" font-family="sans-serif">%s</text>`+"\n",
			left+plotW+10, left+plotW+30, ly, ly, s.color, dash, left+plotW+36, ly+4, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
