package loadgen

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Ceiling is the reference an ingest server is measured against: the most a
// Go HTTP server can do on the machine. It decodes `{"events":[...]}` with
// encoding/json and answers 202; no auth, no limiter, no I/O.
func Ceiling(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"accepted":%d,"batch_id":"ceiling"}`+"\n", len(body.Events))
}
