package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/sluice-ingest/sluice/pkg/dev/devstack"
	"github.com/sluice-ingest/sluice/pkg/dev/devstack/devtest"
)

// storedLog is what the test reads back of a stored OTLP record.
type storedLog struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Data   struct {
		Attributes []struct {
			Key   string `json:"key"`
			Value struct {
				IntValue string `json:"intValue"`
			} `json:"value"`
		} `json:"attributes"`
		Resource struct {
			Attributes []struct {
				Key   string `json:"key"`
				Value struct {
					StringValue string `json:"stringValue"`
				} `json:"value"`
			} `json:"attributes"`
		} `json:"resource"`
	} `json:"data"`
}

// TestOTLPLogsLand exports records with the OpenTelemetry SDK's OTLP/HTTP
// exporter (protobuf, gzip) to the real gateway's /v1/logs and checks that
// the real worker stores every record exactly once, as one event of the
// key's tenant with its resource.
func TestOTLPLogsLand(t *testing.T) {
	st := startStack(t, "key-a acme\n", nil)
	const records = 600
	if err := exportOTLP(t, strings.TrimSuffix(st.ingest, "/v1/events")+"/v1/logs", "key-a", records); err != nil {
		t.Fatalf("export: %v", err)
	}
	seen := map[string]int{}
	devtest.Eventually(t, 60*time.Second, 100*time.Millisecond, func() bool {
		clear(seen)
		for _, o := range devtest.MustReadObjects(t, st.s3.Client(), devstack.S3Bucket, "raw/") {
			for _, l := range o.Lines {
				var sl storedLog
				if err := json.Unmarshal([]byte(l), &sl); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				if sl.Tenant != "acme" {
					t.Fatalf("line %s: tenant %q, want acme", sl.ID, sl.Tenant)
				}
				if len(sl.Data.Resource.Attributes) != 1 || sl.Data.Resource.Attributes[0].Value.StringValue != "checkout" {
					t.Fatalf("line %s: resource %+v, want service.name checkout", sl.ID, sl.Data.Resource)
				}
				for _, a := range sl.Data.Attributes {
					if a.Key == "i" {
						seen[a.Value.IntValue]++
					}
				}
			}
		}
		return len(seen) == records
	}, "not every exported record was stored")
	for i, n := range seen {
		if n != 1 {
			t.Errorf("record %s stored %d times", i, n)
		}
	}
}

// exportOTLP emits n records, attribute i = 0..n-1, through the SDK's
// batch processor and OTLP/HTTP exporter and flushes them; errors the SDK
// reports are returned.
func exportOTLP(t *testing.T, url, key string, n int) error {
	t.Helper()
	return devtest.ExportLogs(t, url, key, 50, func(ctx context.Context, lp *sdklog.LoggerProvider) {
		logger := lp.Logger("app/log")
		for i := range n {
			var r otellog.Record
			r.SetTimestamp(time.Unix(1700000000, int64(i)))
			r.SetSeverity(otellog.SeverityInfo)
			r.SetBody(attribute.StringValue("order placed"))
			r.AddAttributes(attribute.Int("i", i))
			logger.Emit(ctx, r)
		}
	})
}
