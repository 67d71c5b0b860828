-- Answer links that nothing stored can forge (docs/security.md): each link gets its own random
-- secret, put in the email's URL, and only the secret's SHA-256 is kept here, as for API
-- tokens. Links sent before this migration were signed with the key in `link_keys`: the service
-- computes their hash once from that key (db::answers::rehash, run before the next migration),
-- then the next migration drops the key.
ALTER TABLE answer_links ADD COLUMN token_hash TEXT;
CREATE UNIQUE INDEX answer_links_token_hash ON answer_links (token_hash);
