package embedded

import (
	"context"
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
	for _, c := range []Config{{Listen: "nohost"}, {Listen: "127.0.0.1:99999"}, {Partitions: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want error", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
}
