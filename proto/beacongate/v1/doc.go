// Package beaconv1 holds the Go types generated from beacon.proto, the
// record contract of beacongate: every Kafka record value the gateway
// writes is one Beacon in the protobuf binary format. Consumers decode
// records with these types; the gateway itself writes them with package
// record, which encodes without allocating and is tested to produce the
// same bytes as proto.Marshal of these types.
//
// beacon.pb.go is generated (make proto); TestGeneratedCodeIsFresh fails
// when it no longer matches beacon.proto.
package beaconv1
