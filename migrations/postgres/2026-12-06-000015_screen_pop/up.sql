-- The screen pop (issue 20): an agent's current call, the latest one answered by the account,
-- found by the pages' event streams twice a second (docs/architecture.md, "The screen pop").
CREATE INDEX phone_calls_answered_by ON phone_calls (answered_by, answered_at);
