-- Events for webhooks, in the order they happened (written in the transaction of what they
-- tell, and only while some webhook is enabled); removed once every webhook is past them.
CREATE TABLE webhook_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    folder_id TEXT,
    folder_path TEXT,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Receivers told of events: a URL, the events, an optional folder scope (its subtree), the secret
-- that signs each delivery, and where delivery stands: the last event handled, failed deliveries
-- in a row, and which process holds it now (one at a time, so deliveries stay in order).
CREATE TABLE webhook (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    folder_id TEXT,
    description TEXT,
    secret TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    event_cursor BIGINT NOT NULL DEFAULT 0,
    failed_in_a_row BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhook_folder ON webhook (folder_id);

-- A delivery: one POST of a batch of events, retried with the same id and body until it is
-- delivered or given up.
CREATE TABLE webhook_delivery (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    event_count BIGINT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX webhook_delivery_of ON webhook_delivery (webhook_id, created_at);

-- Each attempt of a delivery: when, the answer's status or the error, and how long it took.
CREATE TABLE webhook_attempt (
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
