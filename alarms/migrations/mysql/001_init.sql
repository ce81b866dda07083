-- 001: the alarm records (MySQL 8 / MariaDB 10.11). Every table is one CREATE TABLE IF NOT EXISTS with its
-- indexes inline: MySQL commits each DDL statement on its own, so a start that dies half way through this file
-- leaves whole tables, and the next start (under the runner's GET_LOCK) creates the rest. MySQL 8 has no
-- CREATE INDEX IF NOT EXISTS, which is why the indexes are not separate statements.
-- utf8mb4_bin: ids and keys compare byte for byte, as the sqlite backend and the cursor's (event_ms, id) order do.
-- Sizes: an InnoDB index key holds at most 3072 bytes, 4 per utf8mb4 character: (camera_id 320, event_ms, id 400)
-- is 2888 bytes. An id is `<namespace 63>/<name 253>:<rule 63>:<track>:<ms>`, at most ~400 characters.

CREATE TABLE IF NOT EXISTS alarms (
  id VARCHAR(400) NOT NULL,
  camera_id VARCHAR(320) NOT NULL,
  rule VARCHAR(253) NOT NULL,
  kind VARCHAR(32) NOT NULL,
  severity VARCHAR(16) NOT NULL,
  track_id BIGINT NOT NULL,
  zone VARCHAR(253) NULL,
  box VARCHAR(255) NULL COMMENT 'JSON [x1, y1, x2, y2] in source pixels',
  detail TEXT NOT NULL,
  event_ms BIGINT NOT NULL,
  received_ms BIGINT NOT NULL,
  snapshot_key VARCHAR(1024) NULL,
  clip_key VARCHAR(1024) NOT NULL,
  pre_seconds DOUBLE NOT NULL,
  post_seconds DOUBLE NOT NULL,
  raised_delivered_ms BIGINT NULL,
  clip_ready_ms BIGINT NULL,
  clip_delivered_ms BIGINT NULL,
  completed_ms BIGINT NULL,
  status VARCHAR(16) NOT NULL,
  dead_reason TEXT NULL,
  duplicates INT NOT NULL DEFAULT 0,
  updated_ms BIGINT NOT NULL,
  owner VARCHAR(255) NULL COMMENT 'The replica working on it (claim), until lease_until_ms',
  lease_until_ms BIGINT NULL,
  PRIMARY KEY (id),
  KEY alarms_event (event_ms, id),
  KEY alarms_camera_event (camera_id, event_ms, id),
  KEY alarms_rule_event (rule, event_ms, id),
  KEY alarms_severity_event (severity, event_ms, id),
  KEY alarms_updated (updated_ms, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS alarm_deliveries (
  id BIGINT NOT NULL AUTO_INCREMENT,
  alarm_id VARCHAR(400) NOT NULL,
  type VARCHAR(32) NOT NULL,
  webhook_id VARCHAR(512) NOT NULL,
  started_ms BIGINT NOT NULL,
  finished_ms BIGINT NULL,
  status_code INT NULL,
  latency_ms DOUBLE NULL,
  error TEXT NULL,
  PRIMARY KEY (id),
  KEY deliveries_alarm (alarm_id, id),
  CONSTRAINT deliveries_alarm_fk FOREIGN KEY (alarm_id) REFERENCES alarms (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The dedup key (messages.ts dedupKey: camera|rule|track) and the alarm holding it until expires_ms.
CREATE TABLE IF NOT EXISTS alarm_dedup (
  dedup_key VARCHAR(640) NOT NULL,
  alarm_id VARCHAR(400) NOT NULL,
  event_ms BIGINT NOT NULL,
  expires_ms BIGINT NOT NULL,
  PRIMARY KEY (dedup_key),
  KEY dedup_expires (expires_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Events folded into another alarm: a redelivered duplicate gets the same answer and is counted once.
CREATE TABLE IF NOT EXISTS alarm_duplicates (
  id VARCHAR(400) NOT NULL,
  of_id VARCHAR(400) NOT NULL,
  event_ms BIGINT NOT NULL,
  received_ms BIGINT NOT NULL,
  PRIMARY KEY (id),
  KEY duplicates_of (of_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS endpoints_disabled (
  endpoint_key VARCHAR(512) NOT NULL,
  reason TEXT NOT NULL,
  disabled_ms BIGINT NOT NULL,
  PRIMARY KEY (endpoint_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
