"""The analytics archive: domain objects into versioned records, records into Parquet (or the
JSON lines Firehose converts to Parquet), and records into Pinpoint's event-stream envelope."""
