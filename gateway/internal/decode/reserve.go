package decode

// Reserve charges n bytes to the budget of bytes in flight
// (MaxInflightBytes) for a decoding done outside this package, the OTLP
// path, so that every body the gateway holds counts against the one
// setting. It returns ErrBusy when they are not there; Unreserve gives
// them back.
func (d *Decoder) Reserve(n int64) error {
	if !d.budget.take(n) {
		return ErrBusy
	}
	return nil
}

// Unreserve gives back n bytes taken by Reserve.
func (d *Decoder) Unreserve(n int64) { d.budget.give(n) }
