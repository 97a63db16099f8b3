module github.com/sluice-ingest/sluice/limiter

go 1.26
