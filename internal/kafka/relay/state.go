package relay

import (
	"os"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Records in librdkafka's memory queue die with the process on SIGKILL or
// a crash: nothing can keep them, but their number must not vanish
// silently. Every second the relay writes how many records only its
// memory holds (replayed ones are still in the spool) to the state file;
// a clean shutdown removes it. A file found at start-up means the
// previous process died with up to that many records unsent: they are
// counted in beacongate_records_possibly_lost_total and logged, once:
// the file is rewritten at once, so a crash within the next second does
// not count them again.

// checkState reports what a previous process left in the state file.
func (r *Relay) checkState() {
	if r.cfg.StateFile == "" {
		return
	}
	b, err := os.ReadFile(r.cfg.StateFile)
	if err != nil {
		return // no file: the previous run shut down cleanly, or there was none
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	r.writeState() // counted once, even if this process dies within a second
	possiblyLost.Add(float64(n))
	r.log.Error("the previous process did not shut down cleanly: records that were in its memory queue may be lost",
		zap.Int64("records_in_memory_at_last_check", n), zap.String("state_file", r.cfg.StateFile))
}

// inMemory is the records only this process's memory holds.
func (r *Relay) inMemory() int64 {
	return max(int64(r.kafka.Outstanding())-r.replayOut.Load(), 0)
}

// writeState records the number of records only in memory (write and
// rename, so a reader never sees half a file; no fsync: SIGKILL keeps the
// page cache, and a machine crash loses the queue's count with the queue).
func (r *Relay) writeState() {
	if r.cfg.StateFile == "" {
		return
	}
	tmp := r.cfg.StateFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(r.inMemory(), 10)+"\n"), 0o640); err != nil {
		r.thr.Warn("state", "cannot write the state file", zap.Error(err))
		return
	}
	if err := os.Rename(tmp, r.cfg.StateFile); err != nil {
		r.thr.Warn("state", "cannot write the state file", zap.Error(err))
	}
}

// CleanShutdown removes the state file: call it last, once the producer
// has delivered or spooled everything.
func (r *Relay) CleanShutdown() {
	if r.cfg.StateFile != "" {
		_ = os.Remove(r.cfg.StateFile)
	}
}
