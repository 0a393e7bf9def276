//go:build !race

package event

import "testing"

// The hot path must not allocate once the caller's buffers have capacity.
func TestAllocations(t *testing.T) {
	ev := sampleEvent(0)
	arr, nd := sampleBatch(50)
	count := 0
	countFn := func(i int, ev []byte, err error) bool { // preallocated: captures only count
		if err != nil {
			t.Fatal(err)
		}
		count++
		return true
	}
	scratch := make([]byte, 0, 256)
	stripped := make([]byte, 0, len(ev))
	idNames := []string{"uid", "user_id"}
	fields := Fields{Names: idNames}
	_ = SplitFields(arr, Limits{}, &fields, countFn) // sizes fields.Vals
	for name, fn := range map[string]func(){
		"ValidateObject": func() {
			if _, err := ValidateObject(ev, Limits{}); err != nil {
				t.Fatal(err)
			}
		},
		"ValidateObjectFields": func() {
			if _, err := ValidateObjectFields(ev, Limits{}, &fields); err != nil || len(fields.Vals[0]) == 0 {
				t.Fatal(err, "uid")
			}
		},
		"Split array":  func() { count = 0; _ = Split(arr, Limits{}, countFn) },
		"Split ndjson": func() { count = 0; _ = Split(nd, Limits{}, countFn) },
		"SplitFields":  func() { count = 0; _ = SplitFields(arr, Limits{}, &fields, countFn) },
		"Field plain": func() {
			if v, _, ok := Field(ev, "uid", scratch[:0]); !ok || len(v) == 0 {
				t.Fatal("uid")
			}
		},
		"Field escaped": func() {
			if v, _, ok := Field(ev, "title", scratch[:0]); !ok || len(v) == 0 {
				t.Fatal("title")
			}
		},
		"Field number": func() {
			if _, _, ok := Field(ev, "ts", scratch[:0]); !ok {
				t.Fatal("ts")
			}
		},
		"AppendWithout": func() {
			if out := AppendWithout(stripped[:0], ev, idNames); len(out) == 0 {
				t.Fatal("empty")
			}
		},
		"ValidateObject not_object": func() {
			if _, err := ValidateObject([]byte(" [1] "), Limits{}); err != ErrNotObject {
				t.Fatal(err)
			}
		},
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs/run, want 0", name, n)
		}
	}
	if count = 0; SplitFields(arr, Limits{}, &fields, countFn) != nil || count != 50 || string(fields.Vals[0]) != `"u_8f3e2d1c0b9a8f7e6d5c0049"` {
		t.Errorf("SplitFields: %d events, uid of the last %q", count, fields.Vals[0])
	}
	if count != 50 {
		t.Fatalf("split saw %d events", count)
	}
}
