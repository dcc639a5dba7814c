"""Records, statistics, the metrics bus, snapshots and result files. Never imports the UI."""
