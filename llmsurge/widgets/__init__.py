"""One small widget per pane, fed by :class:`~llmsurge.metrics.bus.Snapshot` objects (attributes down)."""
