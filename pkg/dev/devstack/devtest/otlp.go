package devtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
)

// ExportLogs sends log records to url as an application using the
// OpenTelemetry SDK would: a logger provider with service.name "checkout", its
// batch processor (batch records per export, flushed once emit returns) and
// the OTLP/HTTP exporter (protobuf, gzip) with the API key; opts add exporter
// options (such as WithRetry). emit writes the records through lp. It returns
// the errors the SDK reported, joined.
func ExportLogs(t testing.TB, url, key string, batch int, emit func(ctx context.Context, lp *sdklog.LoggerProvider), opts ...otlploghttp.Option) error {
	t.Helper()
	var mu sync.Mutex
	var errs []error
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}))
	defer otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	opts = append([]otlploghttp.Option{
		otlploghttp.WithEndpointURL(url),
		otlploghttp.WithHeaders(map[string]string{"Authorization": "Bearer " + key}),
		otlploghttp.WithCompression(otlploghttp.GzipCompression),
	}, opts...)
	exp, err := otlploghttp.New(t.Context(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "checkout"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res),
		sdklog.WithProcessor(sdklog.NewBatchProcessor(exp, sdklog.WithExportMaxBatchSize(batch), sdklog.WithExportInterval(time.Hour))))
	emit(t.Context(), lp)
	err = lp.ForceFlush(t.Context())
	if serr := lp.Shutdown(t.Context()); err == nil {
		err = serr
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(append(errs, err)...)
}
