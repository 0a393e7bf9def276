package embedded

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/beacongate/beacongate/internal/kafkatest"
)

// TestDataDirSurvivesRestart: `make run` keeps its records across runs.
func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Listen: "127.0.0.1:0", DataDir: dir, Partitions: 4, Topics: []string{"beacons"}}
	b, err := Start(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.DefaultProduceTopic("beacons"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	b.Close()

	// Another topic name on restart is created next to the old data.
	cfg.Topics = []string{"beacons", "other"}
	b, err = Start(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Cluster().TopicInfo("other") == nil {
		t.Fatalf("topic added on restart was not created")
	}
	if recs := kafkatest.Consume(t, b.Addr(), "beacons", 10, 20*time.Second); len(recs) != 10 {
		t.Fatalf("read %d records after restart, want 10", len(recs))
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{Listen: "nohost"}, {Listen: "127.0.0.1:99999"}, {Partitions: -1},
		{Nodes: -1}, {Nodes: MaxNodes + 1}, {Listen: "127.0.0.1:65535", Nodes: 2}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestNodesShareLeadership: with Nodes > 1 each node listens on a port of
// its own and leads some of the partitions, so a producer talks to several
// brokers as it would to a cluster, and what it writes can be read back
// through the address list Addr returns.
func TestNodesShareLeadership(t *testing.T) {
	b, err := Start(Config{Listen: "127.0.0.1:0", Partitions: 16, Nodes: 3, Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addrs := strings.Split(b.Addr(), ",")
	if len(addrs) != 3 || addrs[0] == addrs[1] || addrs[1] == addrs[2] || addrs[0] == addrs[2] {
		t.Fatalf("Addr() = %q, want 3 distinct host:ports", b.Addr())
	}
	leaders := map[int32]int{}
	for _, p := range b.Cluster().PartitionInfos("beacons") {
		leaders[p.Leader]++
	}
	// Leaders are drawn at random: all 16 on one node has odds of 3 in 3^16.
	if len(leaders) < 2 {
		t.Fatalf("partition leaders by node %v: want at least two nodes leading", leaders)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic("beacons"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 64; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if recs := kafkatest.Consume(t, b.Addr(), "beacons", 64, 20*time.Second); len(recs) != 64 {
		t.Fatalf("read %d records, want 64", len(recs))
	}
}
