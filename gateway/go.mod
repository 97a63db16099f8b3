module github.com/sluice-ingest/sluice/gateway

go 1.26
