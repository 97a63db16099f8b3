package otlp

import (
	"net/http"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-ingest/sluice/gateway/internal/body"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo in every refusal.
const ErrorDomain = "sluice"

// Response is the body of a success: an ExportLogsServiceResponse, with
// partialSuccess when rejected records were refused (the spec's
// "rejected_log_records" and "error_message"), in encoding e.
func Response(e Encoding, rejected int, reason string) []byte {
	resp := &collogspb.ExportLogsServiceResponse{}
	if rejected > 0 {
		resp.PartialSuccess = &collogspb.ExportLogsPartialSuccess{
			RejectedLogRecords: int64(rejected),
			ErrorMessage:       reason,
		}
	}
	return marshal(e, resp)
}

// Status is the body of refusal r: a google.rpc.Status whose code is the
// gRPC code of r's HTTP status, whose message is r's, and whose one detail
// is a google.rpc.ErrorInfo with r's code as its reason (the "error" of
// the JSON API), in encoding e.
func Status(e Encoding, r *body.Error) []byte {
	info, err := anypb.New(&errdetails.ErrorInfo{Reason: string(r.Code), Domain: ErrorDomain})
	st := &status.Status{Code: grpcCode(r.Status()), Message: r.Message}
	if err == nil {
		st.Details = []*anypb.Any{info}
	}
	return marshal(e, st)
}

func marshal(e Encoding, m proto.Message) []byte {
	var b []byte
	var err error
	if e == Protobuf {
		b, err = proto.Marshal(m)
	} else {
		b, err = protojson.Marshal(m)
	}
	if err != nil {
		// Marshalling these messages cannot fail: all their strings are
		// valid UTF-8 (the callers' own text) and they hold no maps.
		panic("otlp: marshal " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	return b
}

// grpcCode is the gRPC status code for an HTTP status, as the gRPC status
// mapping has them.
func grpcCode(httpStatus int) int32 {
	switch httpStatus {
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 5 // NOT_FOUND
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return 12 // UNIMPLEMENTED
	case http.StatusRequestTimeout:
		return 4 // DEADLINE_EXCEEDED
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	}
	if httpStatus >= 500 {
		return 13 // INTERNAL
	}
	return 3 // INVALID_ARGUMENT
}
