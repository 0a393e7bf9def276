package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
)

var fsyncsTotal = promauto.NewCounter(prometheus.CounterOpts{
	Name: "beacongate_spool_fsyncs_total",
	Help: "fsyncs of spool segment files (group commits: acknowledged requests, shutdown).",
})

// Sync makes every record appended before it was called durable: it
// fsyncs the segments rolled away from, the active segment and, after a
// segment was created, the directory. Concurrent callers share fsyncs
// (group commit): one caller runs a round while the others wait, and each
// returns as soon as a round that started after its records were appended
// has finished, so N concurrent Syncs cost about two rounds, not N.
//
// An error is returned to every caller whose records the failed round
// covered. Those records may not be on disk even if a later Sync succeeds
// (Linux may drop pages it failed to write back), so the error says so,
// and later appends go to a new segment.
func (s *Spool) Sync() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	target := s.appendSeq
	s.mu.Unlock()

	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for {
		switch {
		case s.synced >= target:
			return nil
		case s.failedSeq >= target:
			return s.failedErr
		case !s.syncing:
			return s.lead()
		}
		s.syncWaiting++
		s.syncCond.Wait()
		s.syncWaiting--
	}
}

// lead runs one round of fsyncs and wakes the waiting Syncs. syncMu is
// held on entry and return, and released during the fsyncs, so that
// callers arriving meanwhile queue for the next round.
func (s *Spool) lead() error {
	s.syncing = true
	s.syncMu.Unlock()
	seq, err := s.fsyncAll()
	s.syncMu.Lock()
	s.syncing = false
	if err == nil {
		s.synced = max(s.synced, seq)
	} else {
		s.failedSeq, s.failedErr = seq, err
	}
	s.syncCond.Broadcast()
	return err
}

// fsyncAll makes durable what was appended up to the appendSeq it
// returns. Segments are fsynced through descriptors of their own: an
// Append may roll and close the active one meanwhile.
func (s *Spool) fsyncAll() (uint64, error) {
	s.mu.Lock()
	seq, rolled, dir := s.appendSeq, s.unsynced, s.dirDirty
	active := s.segs[len(s.segs)-1].id
	s.unsynced, s.dirDirty = nil, false
	s.mu.Unlock()

	var errs []error
	for _, id := range append(rolled, active) {
		if err := s.syncSegment(id); err != nil {
			errs = append(errs, err)
		}
	}
	var dirErr error
	if dir {
		dirErr = syncDir(s.cfg.Dir)
	}
	if len(errs) == 0 && dirErr == nil {
		return seq, nil
	}
	s.mu.Lock()
	if len(errs) > 0 {
		s.needRoll = true
	}
	if dirErr != nil {
		s.dirDirty = true
		errs = append(errs, dirErr)
	}
	s.mu.Unlock()
	err := fmt.Errorf("spool: cannot make the records appended so far durable in %s; some may be lost in a power failure: %w",
		s.cfg.Dir, errors.Join(errs...))
	s.log.Error("spool: sync failed", zap.Error(err))
	return seq, err
}

// syncSegment fsyncs a segment; one already consumed and deleted needs
// nothing.
func (s *Spool) syncSegment(id uint64) error {
	f, err := os.Open(s.segPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s to fsync it: %w", s.segPath(id), err)
	}
	defer f.Close()
	s.fsyncs.Add(1)
	fsyncsTotal.Inc()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}
