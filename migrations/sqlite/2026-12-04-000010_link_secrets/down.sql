DROP INDEX answer_links_token_hash;
ALTER TABLE answer_links DROP COLUMN token_hash;
