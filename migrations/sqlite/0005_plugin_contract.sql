-- The contract version each plugin version was built against (`wasmswitch:plugin@0.1.0`'s
-- "0.1.0"), read from the component's exports at upload and shown by the API. Every version
-- stored before this column existed was built against 0.1.0, the only contract there was.
ALTER TABLE plugins ADD COLUMN contract TEXT NOT NULL DEFAULT '0.1.0';
