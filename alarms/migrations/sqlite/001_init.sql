-- 001: the alarm records (node:sqlite, `vigil up`). The same tables and columns as mysql/001_init.sql; the runner
-- applies this file and its schema_migrations row in one BEGIN IMMEDIATE transaction (sqlite DDL is transactional).
-- BINARY collation (the default) compares ids byte for byte, like the MySQL tables' utf8mb4_bin.

CREATE TABLE alarms (
  id TEXT NOT NULL PRIMARY KEY,
  camera_id TEXT NOT NULL,
  rule TEXT NOT NULL,
  kind TEXT NOT NULL,
  severity TEXT NOT NULL,
  track_id INTEGER NOT NULL,
  zone TEXT NULL,
  box TEXT NULL, -- JSON [x1, y1, x2, y2] in source pixels
  detail TEXT NOT NULL,
  event_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  snapshot_key TEXT NULL,
  clip_key TEXT NOT NULL,
  pre_seconds REAL NOT NULL,
  post_seconds REAL NOT NULL,
  raised_delivered_ms INTEGER NULL,
  clip_ready_ms INTEGER NULL,
  clip_delivered_ms INTEGER NULL,
  completed_ms INTEGER NULL,
  status TEXT NOT NULL,
  dead_reason TEXT NULL,
  duplicates INTEGER NOT NULL DEFAULT 0,
  updated_ms INTEGER NOT NULL,
  owner TEXT NULL,
  lease_until_ms INTEGER NULL
);
CREATE INDEX alarms_event ON alarms (event_ms, id);
CREATE INDEX alarms_camera_event ON alarms (camera_id, event_ms, id);
CREATE INDEX alarms_rule_event ON alarms (rule, event_ms, id);
CREATE INDEX alarms_severity_event ON alarms (severity, event_ms, id);
CREATE INDEX alarms_updated ON alarms (updated_ms, id);

CREATE TABLE alarm_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  alarm_id TEXT NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  webhook_id TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER NULL,
  status_code INTEGER NULL,
  latency_ms REAL NULL,
  error TEXT NULL
);
CREATE INDEX deliveries_alarm ON alarm_deliveries (alarm_id, id);

CREATE TABLE alarm_dedup (
  dedup_key TEXT NOT NULL PRIMARY KEY,
  alarm_id TEXT NOT NULL,
  event_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL
);
CREATE INDEX dedup_expires ON alarm_dedup (expires_ms);

CREATE TABLE alarm_duplicates (
  id TEXT NOT NULL PRIMARY KEY,
  of_id TEXT NOT NULL,
  event_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL
);
CREATE INDEX duplicates_of ON alarm_duplicates (of_id);

CREATE TABLE endpoints_disabled (
  endpoint_key TEXT NOT NULL PRIMARY KEY,
  reason TEXT NOT NULL,
  disabled_ms INTEGER NOT NULL
);
