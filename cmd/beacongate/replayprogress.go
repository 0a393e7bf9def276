package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// replayProgress reports `beacongate spool replay` of a large spool: on a
// terminal a line rewritten in place (records and bytes done, rate, time
// left), otherwise nothing until the one summary line, so that logs and
// scripts get a single line.
type replayProgress struct {
	totalRecords, totalBytes int64
	start                    time.Time
}

// done is what was replayed so far, from what is still waiting (records
// handed back during the replay can make waiting exceed the start's).
func (p replayProgress) done(waitingRecords, waitingBytes int64) (records, bytes int64) {
	return max(p.totalRecords-waitingRecords, 0), max(p.totalBytes-waitingBytes, 0)
}

// line is one progress report at now.
func (p replayProgress) line(now time.Time, waitingRecords, waitingBytes int64) string {
	recs, bytes := p.done(waitingRecords, waitingBytes)
	elapsed := now.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(recs) / elapsed.Seconds()
	}
	left := "time left unknown"
	if rate > 0 {
		left = "about " + (time.Duration(float64(max(waitingRecords, 0))/rate) * time.Second).Round(time.Second).String() + " left"
	}
	return fmt.Sprintf("spool replay: %d of %d records, %s of %s, %.0f records/s, %s",
		recs, p.totalRecords, mib(bytes), mib(p.totalBytes), rate, left)
}

// summary is the line printed at the end, whatever the output.
func (p replayProgress) summary(now time.Time, waitingRecords, waitingBytes int64) string {
	recs, bytes := p.done(waitingRecords, waitingBytes)
	elapsed := now.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(recs) / elapsed.Seconds()
	}
	return fmt.Sprintf("replayed %d records (%s) in %s, %.0f records/s", recs, mib(bytes), elapsed.Round(time.Millisecond), rate)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// show rewrites the progress line on w every interval until stop is
// closed, then draws it once more with the final state and ends it:
// the last line on the terminal is where the replay ended, not where the
// last tick happened to fall (a replay shorter than interval still gets
// its line). waiting reads the spool's backlog.
func (p replayProgress) show(w io.Writer, interval time.Duration, waiting func() (int64, int64), stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	width := 0
	draw := func(now time.Time) {
		r, b := waiting()
		l := p.line(now, r, b)
		// Pad over a longer previous line.
		fmt.Fprintf(w, "\r%-*s", width, l)
		width = max(width, len(l))
	}
	for {
		select {
		case <-stop:
			draw(time.Now())
			fmt.Fprintln(w)
			return
		case now := <-t.C:
			draw(now)
		}
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
