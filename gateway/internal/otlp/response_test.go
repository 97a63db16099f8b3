package otlp

import (
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ingest/sluice/client/apierror"
	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

func unmarshal(t *testing.T, e Encoding, b []byte, m proto.Message) {
	t.Helper()
	var err error
	if e == Protobuf {
		err = proto.Unmarshal(b, m)
	} else {
		err = protojson.Unmarshal(b, m)
	}
	if err != nil {
		t.Fatalf("%s %q: %v", e.ContentType(), b, err)
	}
}

// The answers decode as the messages the spec names, in both encodings.
func TestAnswers(t *testing.T) {
	if got := string(Response(JSON, 0, "")); got != "{}" {
		t.Errorf("full success in JSON: %s", got)
	}
	if got := Response(Protobuf, 0, ""); len(got) != 0 {
		t.Errorf("full success in protobuf: %x", got)
	}
	for _, e := range []Encoding{Protobuf, JSON} {
		var resp collogspb.ExportLogsServiceResponse
		unmarshal(t, e, Response(e, 2, "traceId must be 16 bytes, got 3"), &resp)
		if ps := resp.GetPartialSuccess(); ps.GetRejectedLogRecords() != 2 || ps.GetErrorMessage() != "traceId must be 16 bytes, got 3" {
			t.Errorf("%s: %v", e.ContentType(), &resp)
		}
		var st status.Status
		unmarshal(t, e, Status(e, &body.Error{Code: apierror.RateLimited, Message: "tenant rate limit exceeded"}), &st)
		var info errdetails.ErrorInfo
		if len(st.Details) != 1 || st.Details[0].UnmarshalTo(&info) != nil {
			t.Fatalf("%s: %v", e.ContentType(), &st)
		}
		if st.Code != 8 || st.Message != "tenant rate limit exceeded" || info.Reason != "rate_limited" || info.Domain != ErrorDomain {
			t.Errorf("%s: %v %v", e.ContentType(), &st, &info)
		}
	}
}
