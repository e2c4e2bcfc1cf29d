-- Segments (SPEC §8): one object may hold many traces of one handler, each its own zstd
-- frame. An index row then names its frame: `object_offset` is where the frame starts
-- in the object and `size_bytes` its length; `sha256` is the frame's. NULL: the trace
-- is the whole object (a single-trace object, as every object before this migration).
ALTER TABLE traces ADD COLUMN object_offset bigint CHECK (object_offset >= 0);
ALTER TABLE pins ADD COLUMN object_offset bigint CHECK (object_offset >= 0);

-- Several pinned traces may share one segment: the segment stays pinned while any of
-- them does.
DROP INDEX pins_by_key;
CREATE INDEX pins_by_key ON pins (object_key);
