-- The extensions that have answered a PBX call, each as a newline and the number: an `answer`
-- event repeated after a transfer (a PBX's retry) is recognised and changes nothing.
ALTER TABLE phone_calls ADD COLUMN answerers TEXT NOT NULL DEFAULT '';
