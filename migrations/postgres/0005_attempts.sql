-- Attempt counters of the regulator (idp/regulation): every guess at a secret (password,
-- second factor, recovery link) reserves an attempt here, in one conditional upsert,
-- before the secret is checked. A row is one key (e.g. an account and a source address).
--
--   count         attempts reserved in the current window (or consecutive failures)
--   window_end    when the window ends (unix ns); the next reservation then starts afresh
--   blocked_until no reservation before this instant (unix ns): the back-off
CREATE TABLE attempt_counters (
    key           text   PRIMARY KEY,
    count         integer NOT NULL,
    window_end    bigint NOT NULL,
    blocked_until bigint NOT NULL DEFAULT 0
);
CREATE INDEX attempt_counters_window_end ON attempt_counters (window_end);
