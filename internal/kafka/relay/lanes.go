package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka/spool"
)

// A spool directory holds three lanes, each a spool of its own:
//
//	<dir>/*.seg, cursor   the main lane: records spooled because Kafka was
//	                      not taking them (where v0.1 spools live too)
//	<dir>/kept/           records librdkafka handed back (a timeout, or the
//	                      purge at shutdown): they were produced before
//	                      everything in the main lane, so they are replayed
//	                      first, which keeps each key's order
//	<dir>/quarantine/     records Kafka refuses for good and that could not
//	                      go to the dead-letter topic; never replayed, read
//	                      with `beacongate spool inspect`
//	<dir>/beacongate.json which topic the records are for, and the topic's
//	                      max.message.bytes when it was last known
const (
	keptDir       = "kept"
	quarantineDir = "quarantine"
	metaName      = "beacongate.json"
)

// meta is the content of beacongate.json.
type meta struct {
	Topic         string `json:"topic"`
	TopicMaxBytes int    `json:"topic_max_bytes,omitempty"`
}

// Spools is an open spool directory: its lanes and what it is for.
type Spools struct {
	Dir        string
	Main       *spool.Spool
	Kept       *spool.Spool
	Quarantine *spool.Spool
	// MaxBytes is the budget of records waiting (main and kept lanes);
	// see Relay for how it is spent.
	MaxBytes int64
	meta     meta
	log      *zap.Logger
}

// ErrTopicMismatch is wrapped by OpenSpools when the directory holds
// records for another topic.
var ErrTopicMismatch = errors.New("the spool holds records for another topic")

// OpenSpools opens (creating if needed) the spool directory cfg.Dir for
// records of topic. A directory written for another topic is refused: its
// records would otherwise be replayed into the wrong topic. A directory of
// an earlier version, without beacongate.json, is adopted for topic.
//
// handBack is the most bytes of records (keys and values) the producer
// can hand back at once, its whole queue, and handBackRecords their
// number: the kept lane is sized to take them all, beyond cfg.MaxBytes if
// need be. They were acknowledged to clients already; a kept lane that
// refused them would lose them.
func OpenSpools(cfg spool.Config, topic string, handBack int64, handBackRecords int, log *zap.Logger) (*Spools, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = spool.DefaultMaxBytes
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: cannot create directory %s: %w", cfg.Dir, err)
	}
	m, found, err := readMeta(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if found && m.Topic != topic {
		return nil, fmt.Errorf("spool %s holds records for topic %q, not %q: replay them with `beacongate spool replay -spool.dir %s -kafka.topic %s`, or give this gateway another -spool.dir: %w",
			cfg.Dir, m.Topic, topic, cfg.Dir, m.Topic, ErrTopicMismatch)
	}
	s := &Spools{Dir: cfg.Dir, MaxBytes: cfg.MaxBytes, meta: m, log: log}
	// The main lane's own bound is the budget; the kept lane may take as
	// much again, or the producer's whole queue if that is more (refusing
	// a kept record loses it); the quarantine a quarter.
	if s.Main, err = spool.Open(cfg, log.Named("main")); err != nil {
		return nil, err
	}
	kc := cfg
	kc.Dir = filepath.Join(cfg.Dir, keptDir)
	kc.MaxBytes = max(cfg.MaxBytes, handBack+int64(handBackRecords)*spool.FrameSize(0, 0))
	if s.Kept, err = spool.Open(kc, log.Named("kept")); err != nil {
		s.Main.Close()
		return nil, err
	}
	qc := spool.Config{Dir: filepath.Join(cfg.Dir, quarantineDir), MaxBytes: max(cfg.MaxBytes/4, 1<<20)}
	if s.Quarantine, err = spool.Open(qc, log.Named("quarantine")); err != nil {
		s.Main.Close()
		s.Kept.Close()
		return nil, err
	}
	if !found {
		if st := s.Main.Stats(); st.Records > 0 {
			log.Warn("spool written by an earlier version: its records are taken to be for this topic",
				zap.String("dir", cfg.Dir), zap.String("topic", topic), zap.Int64("records", st.Records))
		}
		s.meta = meta{Topic: topic}
		if err := s.writeMeta(); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Topic is the topic the records are for.
func (s *Spools) Topic() string { return s.meta.Topic }

// TopicMaxBytes is the topic's max.message.bytes when it was last known.
func (s *Spools) TopicMaxBytes() int { return s.meta.TopicMaxBytes }

// SetTopicMaxBytes remembers the topic's max.message.bytes for the next
// start (when Kafka may be down and the limit unknown).
func (s *Spools) SetTopicMaxBytes(n int) error {
	if n <= 0 || n == s.meta.TopicMaxBytes {
		return nil
	}
	s.meta.TopicMaxBytes = n
	return s.writeMeta()
}

// Waiting is the records and bytes waiting to be replayed (main and kept).
func (s *Spools) Waiting() (records, bytes int64) {
	m, k := s.Main.Stats(), s.Kept.Stats()
	return m.Records + k.Records, m.Bytes + k.Bytes
}

// Sync makes every record of the main and kept lanes durable.
func (s *Spools) Sync() error {
	return errors.Join(s.Kept.Sync(), s.Main.Sync(), s.Quarantine.Sync())
}

// Close syncs and closes every lane.
func (s *Spools) Close() error {
	return errors.Join(s.Kept.Close(), s.Main.Close(), s.Quarantine.Close())
}

func readMeta(dir string) (meta, bool, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("spool: cannot read %s: %w", filepath.Join(dir, metaName), err)
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Topic == "" {
		return m, false, fmt.Errorf("spool: %s is damaged (want {\"topic\": ...}): %v", filepath.Join(dir, metaName), err)
	}
	return m, true, nil
}

// ReadTopic returns the topic a spool directory holds records for, or ""
// for a directory without beacongate.json (an earlier version's, or not
// a spool). It changes nothing.
func ReadTopic(dir string) (string, error) {
	m, _, err := readMeta(dir)
	return m.Topic, err
}

// writeMeta replaces beacongate.json atomically and durably.
func (s *Spools) writeMeta() error {
	b, _ := json.Marshal(s.meta)
	path := filepath.Join(s.Dir, metaName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err == nil {
		_, err = f.Write(append(b, '\n'))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(s.Dir); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("spool: cannot write %s: %w", path, err)
	}
	return nil
}
