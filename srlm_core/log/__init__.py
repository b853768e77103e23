"""The event log: event schemas (`events`), the append-only Parquet store (`eventlog`), read-only
SQL over it (`query`, `views.sql`) and model lineage (`lineage`)."""
