package main

import (
	"io"
	"strings"
	"testing"
)

func TestFlagsEnvAndCommandLine(t *testing.T) {
	env := map[string]string{
		"BEACONGATE_KAFKA_TOPIC":          "from-env",
		"BEACONGATE_KAFKA_BROKERS":        "env:9092",
		"BEACONGATE_KAFKA_CONFIG":         "linger.ms=20;batch.size=1000000",
		"BEACONGATE_HTTP_MAX_BODY_BYTES":  "2048",
		"BEACONGATE_EMBEDDED_PARTITIONS":  "4",
		"BEACONGATE_HTTP_CORS_ORIGINS":    "https://a.example, https://b.example",
		"BEACONGATE_SHUTDOWN_DRAIN":       "1s",
		"BEACONGATE_UNRELATED_NOT_A_FLAG": "x",
	}
	o, _, err := parseFlags([]string{"-kafka.brokers", "cli:9092", "-kafka.config", "acks=all"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.kafkaBrokers != "cli:9092" {
		t.Errorf("command line must win: brokers %q", o.kafkaBrokers)
	}
	if o.producer.Topic != "from-env" || o.ingest.MaxBodyBytes != 2048 || o.embedded.Partitions != 4 || o.shutdownDrain.String() != "1s" {
		t.Errorf("env not applied: %+v", o)
	}
	if got := o.producer.Settings; got["acks"] != "all" || len(got) != 1 {
		t.Errorf("-kafka.config on the command line replaces the env list: %v", got)
	}
	if len(o.ingest.CORSOrigins) != 2 || o.ingest.CORSOrigins[1] != "https://b.example" {
		t.Errorf("cors origins %q", o.ingest.CORSOrigins)
	}

	o, _, err = parseFlags(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s := o.producer.Settings; s["linger.ms"] != "20" || s["batch.size"] != "1000000" {
		t.Errorf("-kafka.config from env: %v", s)
	}
}

func TestFlagErrors(t *testing.T) {
	_, _, err := parseFlags(nil, func(k string) string {
		if k == "BEACONGATE_HTTP_MAX_BODY_BYTES" {
			return "lots"
		}
		return ""
	}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "BEACONGATE_HTTP_MAX_BODY_BYTES") {
		t.Fatalf("bad env value: %v, want an error naming the variable", err)
	}
	if _, _, err := parseFlags([]string{"-kafka.config", "novalue"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatalf("-kafka.config without '=' must fail")
	}
	if _, _, err := parseFlags([]string{"stray"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatalf("a stray argument must fail")
	}
	o, _, err := parseFlags([]string{"-http.listen", "127.0.0.1:9100"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.validate(); err == nil {
		t.Fatalf("http and admin on the same address must not validate")
	}
}
