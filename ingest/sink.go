package ingest

// Sink takes encoded records. The producer implements it; tests use fakes.
type Sink interface {
	// Produce enqueues one record without blocking. key and value are
	// copied before it returns, so the caller may reuse them at once.
	// A nil key means no key. Errors that should reach the client carry
	// their HTTP status (see StatusError).
	Produce(key, value []byte) error
}
