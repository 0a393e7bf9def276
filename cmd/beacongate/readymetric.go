package main

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// registerReadyMetric exposes /readyz as a gauge, so that alerts and
// dashboards see the share of a fleet that takes traffic from the
// gateways themselves (deploy/prometheus), without kube-state-metrics.
func registerReadyMetric(ready func() (bool, string)) {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "beacongate_ready",
		Help: "1 while /readyz answers 200 (Kafka takes records and the gateway is not shutting down), else 0.",
	}, func() float64 {
		if ok, _ := ready(); ok {
			return 1
		}
		return 0
	})
	if err := prometheus.Register(g); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		panic("BUG: beacongate_ready: " + err.Error())
	}
}
