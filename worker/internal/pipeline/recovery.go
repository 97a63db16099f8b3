package pipeline

import "sync"

// recovery wakes the uploads waiting to retry as soon as one upload
// succeeds: after an S3 outage they go on at once, not at the end of a
// backoff that grew while S3 was down (up to twice RetryMax).
type recovery struct {
	mu sync.Mutex
	ch chan struct{}
}

// next is closed at the next successful upload.
func (r *recovery) next() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch == nil {
		r.ch = make(chan struct{})
	}
	return r.ch
}

// succeeded wakes the waiting uploads.
func (r *recovery) succeeded() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
}
