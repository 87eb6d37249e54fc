//! Columnar snapshots: struct-of-arrays <-> Arrow, Arrow IPC and Parquet files, and the manifest. Arrives with its issue.
