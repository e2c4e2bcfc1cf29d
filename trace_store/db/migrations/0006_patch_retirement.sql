-- Retention finds the patches of traces that left the window by their trace's time.
CREATE INDEX patches_by_trace_time ON patches (trace_started_at);
