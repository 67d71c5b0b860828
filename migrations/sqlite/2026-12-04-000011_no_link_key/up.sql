-- The key that signed answer links is gone: the links' hashes were stored from it
-- (db::answers::rehash), and no key that could make a link remains in the database.
DROP TABLE link_keys;
