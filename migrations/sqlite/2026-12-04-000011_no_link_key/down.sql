-- The key is not brought back: links made since have secrets of their own.
CREATE TABLE link_keys (
    name       TEXT PRIMARY KEY NOT NULL,
    secret     TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
