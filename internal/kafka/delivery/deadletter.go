package delivery

// DeadLetter describes an event the gateway rejected (its 4xx) when it is
// sent to the dead-letter topic with its raw bytes.
type DeadLetter struct {
	Reason, Error        string
	Status               int
	RequestID, GatewayID string
	Path, ContentType    string
	ClientIP             string
	ReceivedAtMicros     int64
	BatchIndex           int // -1: not from a batch
}
