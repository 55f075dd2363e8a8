"""The data-lake export: approval events as CloudEvents (JSON Lines, gzip) and Parquet, partitioned
by date."""
