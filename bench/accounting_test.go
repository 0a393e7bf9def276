package bench

import (
	"testing"

	"google.golang.org/protobuf/proto"

	beaconv1 "github.com/beacongate/beacongate/proto/beacongate/v1"
)

// syntheticKeys makes keys "a" and "b" with n events each, all
// acknowledged except the seqs in unacked.
func syntheticKeys(n uint64, unacked map[string][]uint64) []*keyState {
	var keys []*keyState
	for _, uid := range []string{"a", "b"} {
		k := &keyState{uid: uid, seq: n}
		skip := map[uint64]bool{}
		for _, s := range unacked[uid] {
			skip[s] = true
		}
		for s := uint64(1); s <= n; s++ {
			if !skip[s] {
				k.acked.set(s)
			}
		}
		keys = append(keys, k)
	}
	return keys
}

func TestTallyFindsLostDuplicatedAndReorderedEvents(t *testing.T) {
	type rec struct {
		part int32
		uid  string
		seq  uint64
	}
	cases := []struct {
		name    string
		unacked map[string][]uint64
		recs    []rec
		want    Accounting
		found   int64
	}{{
		name: "all delivered in order",
		recs: []rec{{0, "a", 1}, {1, "b", 1}, {0, "a", 2}, {0, "a", 3}, {1, "b", 2}, {1, "b", 3}},
		want: Accounting{Delivered: 6}, found: 6,
	}, {
		name: "lost, duplicated, reordered",
		// a/2 lost; b/1 duplicated; b/3 before b/2.
		recs: []rec{{0, "a", 1}, {0, "a", 3}, {1, "b", 1}, {1, "b", 1}, {1, "b", 3}, {1, "b", 2}},
		want: Accounting{Delivered: 5, Lost: 1, Duplicated: 1, OrderViolations: 1, LostSamples: []string{"a/2"}}, found: 5,
	}, {
		name:    "a gap of a rejected event is neither lost nor out of order",
		unacked: map[string][]uint64{"a": {2}},
		recs:    []rec{{0, "a", 1}, {0, "a", 3}, {1, "b", 1}, {1, "b", 2}, {1, "b", 3}},
		want:    Accounting{Delivered: 5}, found: 5,
	}, {
		name:    "delivered without an acknowledgement, a key on two partitions",
		unacked: map[string][]uint64{"b": {3}},
		recs:    []rec{{0, "a", 1}, {0, "a", 2}, {2, "a", 3}, {1, "b", 1}, {1, "b", 2}, {1, "b", 3}},
		want:    Accounting{Delivered: 6, DeliveredUnacknowledged: 1, KeysSplit: 1}, found: 5,
	}, {
		name: "a seq never sent, an unknown user",
		recs: []rec{{0, "a", 1}, {0, "a", 2}, {0, "a", 3}, {0, "a", 4}, {0, "zz", 1}, {1, "b", 1}, {1, "b", 2}, {1, "b", 3}},
		want: Accounting{Delivered: 6, Unreadable: 2}, found: 6,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTally("rid", syntheticKeys(3, tc.unacked))
			for _, r := range tc.recs {
				tl.observe(r.part, r.uid, r.seq)
			}
			tl.finish()
			got := tl.acc
			if got.Delivered != tc.want.Delivered || got.Lost != tc.want.Lost || got.Duplicated != tc.want.Duplicated ||
				got.OrderViolations != tc.want.OrderViolations || got.KeysSplit != tc.want.KeysSplit ||
				got.DeliveredUnacknowledged != tc.want.DeliveredUnacknowledged || got.Unreadable != tc.want.Unreadable ||
				tl.found != tc.found || len(got.LostSamples) != len(tc.want.LostSamples) {
				t.Fatalf("got %+v found %d\nwant %+v found %d", got, tl.found, tc.want, tc.found)
			}
			for i := range got.LostSamples {
				if got.LostSamples[i] != tc.want.LostSamples[i] {
					t.Fatalf("lost samples %v, want %v", got.LostSamples, tc.want.LostSamples)
				}
			}
		})
	}
}

func TestDecodeEventReadsPixelsAndJSONEvents(t *testing.T) {
	pixel := &beaconv1.Beacon{Kind: beaconv1.Kind_KIND_PIXEL, Params: []*beaconv1.Param{
		{Name: "sid", Value: "shop.example.com"}, {Name: "uid", Value: "u-1"}, {Name: "rid", Value: "r1"}, {Name: "seq", Value: "42"},
	}}
	beacon := &beaconv1.Beacon{Kind: beaconv1.Kind_KIND_BEACON, Payload: []byte(`{"rid":"r1","seq":7,"user_id":"u-2","event":"click"}`)}
	// Not the harness's layout: the JSON decoder takes over.
	reordered := &beaconv1.Beacon{Kind: beaconv1.Kind_KIND_BATCH_EVENT, Payload: []byte(`{"user_id":"u-3", "seq":9, "rid":"r1"}`)}
	otherRun := &beaconv1.Beacon{Kind: beaconv1.Kind_KIND_PIXEL, Params: []*beaconv1.Param{{Name: "rid", Value: "r2"}, {Name: "uid", Value: "r1"}, {Name: "seq", Value: "1"}}}
	noRun := &beaconv1.Beacon{Kind: beaconv1.Kind_KIND_PIXEL, Params: []*beaconv1.Param{{Name: "uid", Value: "u"}}}

	var msg beaconv1.Beacon
	for _, tc := range []struct {
		rec  *beaconv1.Beacon
		uid  string
		seq  uint64
		ours bool
	}{
		{pixel, "u-1", 42, true}, {beacon, "u-2", 7, true}, {reordered, "u-3", 9, true},
		{otherRun, "", 0, false}, {noRun, "", 0, false},
	} {
		b, err := proto.Marshal(tc.rec)
		if err != nil {
			t.Fatal(err)
		}
		uid, seq, ours, err := decodeEvent(b, "r1", &msg)
		if err != nil || uid != tc.uid || seq != tc.seq || ours != tc.ours {
			t.Errorf("%v: got %q %d ours=%v err=%v, want %q %d ours=%v", tc.rec, uid, seq, ours, err, tc.uid, tc.seq, tc.ours)
		}
	}
	// A record naming the run that is not a Beacon is this run's and
	// unreadable, not silently skipped.
	if _, _, ours, err := decodeEvent([]byte("\xff\xffr1"), "r1", &msg); !ours || err == nil {
		t.Fatalf("garbage with the run id: ours=%v err=%v", ours, err)
	}
}

func TestBitset(t *testing.T) {
	var b bitset
	for _, i := range []uint64{0, 1, 63, 64, 1000} {
		b.set(i)
	}
	for i := uint64(0); i < 1100; i++ {
		want := i == 0 || i == 1 || i == 63 || i == 64 || i == 1000
		if b.has(i) != want {
			t.Fatalf("has(%d) = %v", i, !want)
		}
	}
}
