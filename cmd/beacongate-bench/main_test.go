package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/beacongate/beacongate/bench"
)

func TestDefaultFlagsAreAValidConfig(t *testing.T) {
	c, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != bench.DefaultURL || c.Conns != bench.DefaultConns || c.Duration != bench.DefaultDuration || c.Spawn || c.Baseline {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFlagsReachTheConfig(t *testing.T) {
	c, err := parseFlags(strings.Fields("-spawn -baseline -mode open -rate 5000 -conns 8 -duration 3s -requests 100 "+
		"-preset 2kb -mix pixel=1,batch=1 -gateway-arg=-kafka.config -gateway-arg=linger.ms=10 -json - -html x.html"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Spawn || !c.Baseline || c.Mode != "open" || c.Rate != 5000 || c.Conns != 8 || c.Duration != 3*time.Second ||
		c.Requests != 100 || c.Preset != "2kb" || c.Mix != (bench.Mix{Pixel: 1, Batch: 1}) ||
		strings.Join(c.GatewayArgs, " ") != "-kafka.config linger.ms=10" || c.JSONPath != "-" || c.HTMLPath != "x.html" {
		t.Fatalf("%+v", c)
	}
}

func TestBadFlagsFailWithOneLine(t *testing.T) {
	for _, args := range []string{"-mix gif=1", "-mode open", "-preset 1kb", "-conns -1", "-duration -1s", "stray"} {
		var out bytes.Buffer
		if code := run(strings.Fields(args), &out, &out); code != 2 {
			t.Errorf("%q: exit code %d, want 2\n%s", args, code, out.String())
		}
	}
	if _, err := parseFlags([]string{"-h"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}
