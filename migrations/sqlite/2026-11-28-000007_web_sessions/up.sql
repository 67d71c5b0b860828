-- Sessions of the web pages (CONTRACT §5): signed in with an account's token, then a cookie.
-- The cookie's value is never stored, only its SHA-256 (id), like tokens. A session ends at
-- expires_at, at sign-out, or when its account is deleted (the lookup joins live accounts and
-- the deletion removes the rows).
CREATE TABLE web_sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    -- The secret every form of this session carries (CSRF).
    csrf       TEXT NOT NULL,
    language   TEXT NOT NULL CHECK (language IN ('fr', 'nl', 'de', 'en')),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
