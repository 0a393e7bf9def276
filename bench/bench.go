// Package bench will hold the load-test harness behind beacongate-bench
// (issue #3): a realistic mix of pixel, sendBeacon and batch traffic in
// closed and open loop, exact end-to-end accounting read back from Kafka,
// and the gateway/baseline ratios that matter on a shared machine.
package bench
