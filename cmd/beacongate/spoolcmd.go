package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafka"
	"github.com/beacongate/beacongate/internal/kafka/producer"
	"github.com/beacongate/beacongate/internal/kafka/relay"
	"github.com/beacongate/beacongate/internal/kafka/spool"
)

// spoolCommand is `beacongate spool inspect|replay`: look into a spool
// directory without changing it (also while a gateway runs on it), or
// replay it into a cluster (the gateway must not be running on it).
func spoolCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "inspect" && args[0] != "replay") {
		fmt.Fprintln(stderr, "usage: beacongate spool inspect -spool.dir DIR [-quarantine] | replay -spool.dir DIR -kafka.brokers B [-kafka.topic T] [-kafka.config k=v]")
		return 2
	}
	verb := args[0]
	flags := flag.NewFlagSet("beacongate spool "+verb, flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("spool.dir", "./data/spool", "spool directory")
	quarantine := flags.Bool("quarantine", false, "inspect: also print every quarantined record (one JSON object per line)")
	brokers := flags.String("kafka.brokers", "127.0.0.1:9092", "replay: bootstrap servers")
	topic := flags.String("kafka.topic", "", "replay: topic (default: the one the spool was written for); must match it")
	timeout := flags.Duration("timeout", 10*time.Minute, "replay: give up after this long")
	settings := kvFlag{}
	flags.Var(settings, "kafka.config", "replay: librdkafka property key=value, repeatable")
	if err := flags.Parse(args[1:]); err != nil {
		return 2
	}
	if verb == "inspect" {
		if err := inspectSpool(*dir, *quarantine, stdout); err != nil {
			fmt.Fprintf(stderr, "beacongate spool inspect: %v\n", err)
			return 1
		}
		return 0
	}
	log := newLogger(zap.InfoLevel)
	defer func() { _ = log.Sync() }()
	var progress io.Writer // a terminal gets a progress line
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		progress = f
	}
	if err := replaySpool(*dir, *brokers, *topic, settings, *timeout, log, stdout, progress); err != nil {
		fmt.Fprintf(stderr, "beacongate spool replay: %v\n", err)
		return 1
	}
	return 0
}

// laneInfo is one lane in inspect's output.
type laneInfo struct {
	Records      int64  `json:"records"`
	Bytes        int64  `json:"bytes"`
	Segments     int    `json:"segments"`
	Oldest       string `json:"oldest,omitempty"`
	TornBytes    int64  `json:"torn_bytes,omitempty"`
	CorruptBytes int64  `json:"corrupt_bytes,omitempty"`
}

func lane(info spool.Info) laneInfo {
	l := laneInfo{Records: info.Records, Bytes: info.Bytes, Segments: info.Segments, TornBytes: info.TornBytes, CorruptBytes: info.CorruptBytes}
	if !info.Oldest.IsZero() {
		l.Oldest = info.Oldest.UTC().Format(time.RFC3339Nano)
	}
	return l
}

// inspectSpool prints what a spool directory holds, reading only.
func inspectSpool(dir string, listQuarantine bool, out io.Writer) error {
	topic, err := relay.ReadTopic(dir)
	if err != nil {
		return err
	}
	main, err := spool.Inspect(dir, nil)
	if err != nil {
		return err
	}
	kept, err := inspectLane(filepath.Join(dir, "kept"), nil)
	if err != nil {
		return err
	}
	byCode := map[string]int64{}
	enc := json.NewEncoder(out)
	quar, err := inspectLane(filepath.Join(dir, "quarantine"), func(key, value []byte, t time.Time) error {
		q, err := relay.DecodeQuarantined(key, value)
		if err != nil {
			byCode["undecodable"]++
			return nil
		}
		byCode[q.Code]++
		if listQuarantine {
			return enc.Encode(map[string]any{"quarantined": map[string]any{
				"key": string(q.Key), "value_bytes": len(q.Value), "code": q.Code, "error": q.Error,
				"topic": q.Topic, "gateway_id": q.GatewayID, "failed_at": q.FailedAt.UTC().Format(time.RFC3339Nano),
			}})
		}
		return nil
	})
	if err != nil {
		return err
	}
	res := map[string]any{
		"dir": dir, "topic": topic,
		// Waiting to be replayed: the kept lane goes first, then the main one.
		"records": main.Records + kept.Records, "bytes": main.Bytes + kept.Bytes,
		"segments": main.Segments + kept.Segments, "corrupt_skipped": main.CorruptBytes + kept.CorruptBytes,
		"main": lane(main), "kept": lane(kept),
		"quarantine": map[string]any{"records": quar.Records, "bytes": quar.Bytes, "by_code": byCode},
	}
	oldest := main.Oldest
	if kept.Records > 0 {
		oldest = kept.Oldest
	}
	if !oldest.IsZero() {
		res["oldest"] = oldest.UTC().Format(time.RFC3339Nano)
		res["oldest_age_seconds"] = time.Since(oldest).Seconds()
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// inspectLane is spool.Inspect for a lane that may not exist yet.
func inspectLane(dir string, fn func(key, value []byte, t time.Time) error) (spool.Info, error) {
	info, err := spool.Inspect(dir, fn)
	if errors.Is(err, fs.ErrNotExist) {
		return spool.Info{}, nil
	}
	return info, err
}

// replaySpool sends a spool's records to Kafka with the gateway's own
// Kafka side (kept lane first, in order, failures retried, refused records
// set aside), and reports what it did.
func replaySpool(dir, brokers, topic string, settings kvFlag, timeout time.Duration, log *zap.Logger, out, progress io.Writer) error {
	if topic == "" {
		t, err := relay.ReadTopic(dir)
		if err != nil {
			return err
		}
		if topic = t; topic == "" {
			topic = producer.DefaultTopic
		}
	}
	side, err := kafka.Open(kafka.Config{
		Producer: producer.Config{Brokers: brokers, Topic: topic, Settings: settings},
		Spool:    spool.Config{Dir: dir},
	}, log)
	if err != nil {
		return err
	}
	before, beforeBytes := side.Spools.Waiting()
	p := replayProgress{totalRecords: before, totalBytes: beforeBytes, start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stop, shown := make(chan struct{}), make(chan struct{})
	if progress != nil {
		go func() { defer close(shown); p.show(progress, 500*time.Millisecond, side.Spools.Waiting, stop) }()
	} else {
		close(shown)
	}
	// Replay replays the spool while Kafka takes records, within ctx.
	r := side.Replay(ctx)
	close(stop)
	<-shown
	_, leftBytes := side.Spools.Waiting()
	fmt.Fprintf(out, "%s to %s on %s; %d left in the spool, %d quarantined, %d lost\n",
		p.summary(time.Now(), r.Waiting, leftBytes), topic, brokers, r.Waiting, r.Quarantined, r.Lost)
	if r.Lost > 0 {
		return r.Err()
	}
	if r.Waiting > 0 {
		return fmt.Errorf("%d records are still in the spool (Kafka did not take them within %v)", r.Waiting, timeout)
	}
	return nil
}
