module github.com/sluice-ingest/sluice/pkg

go 1.26
