-- Secrets the daemon signs with, by purpose (`signed_urls`: the URLs it serves itself). Made by
-- the first process that needs one, so every process of a deployment signs and checks alike.
CREATE TABLE signing_secret (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
