module github.com/sluice-ingest/sluice/worker

go 1.26
