//! Versioned schema migrations. `PRAGMA user_version` holds the version; each migration runs in
//! its own transaction. Migrations are append-only: never edit one that has shipped.

use std::path::Path;

use rusqlite::Connection;

use crate::{Result, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
    },
    Migration {
        version: 2,
        name: "cron",
        sql: "
            CREATE TABLE cron_jobs (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                enabled INTEGER NOT NULL,
                job_json TEXT NOT NULL,
                state_json TEXT NOT NULL,
                next_run_at_ms INTEGER,
                created_at_ms INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX cron_jobs_due ON cron_jobs (enabled, next_run_at_ms);
            CREATE TABLE cron_runs (
                run_id TEXT PRIMARY KEY,
                job_id TEXT NOT NULL,
                slot_ms INTEGER,
                trigger TEXT NOT NULL,
                status TEXT NOT NULL,
                lease_owner INTEGER NOT NULL,
                lease_until_ms INTEGER,
                started_at_ms INTEGER NOT NULL,
                finished_at_ms INTEGER,
                delivery_status TEXT,
                completion_status TEXT,
                record_json TEXT NOT NULL
            ) STRICT;
            CREATE INDEX cron_runs_job ON cron_runs (job_id, started_at_ms);
            CREATE INDEX cron_runs_open ON cron_runs (status) WHERE status = 'running';
            CREATE INDEX cron_runs_delivery ON cron_runs (delivery_status) WHERE delivery_status = 'pending';
        ",
    },
    Migration {
        version: 3,
        name: "outbox",
        sql: "
            CREATE TABLE outbox (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                idempotency_key TEXT NOT NULL UNIQUE,
                origin_kind TEXT NOT NULL,
                origin_id TEXT,
                channel TEXT NOT NULL,
                account_id TEXT,
                target TEXT NOT NULL,
                thread_id TEXT,
                conversation TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'unknown', 'dead')),
                attempts INTEGER NOT NULL,
                max_attempts INTEGER NOT NULL,
                next_attempt_at_ms INTEGER NOT NULL,
                lease_owner INTEGER,
                lease_until_ms INTEGER,
                created_at_ms INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL,
                settled_at_ms INTEGER,
                last_error TEXT,
                last_error_class TEXT,
                best_effort INTEGER NOT NULL,
                body TEXT NOT NULL
            ) STRICT;
            CREATE INDEX outbox_open ON outbox (conversation, seq) WHERE state IN ('pending', 'sending');
            CREATE INDEX outbox_due ON outbox (state, next_attempt_at_ms);
            CREATE INDEX outbox_origin ON outbox (origin_id);
            CREATE TABLE outbox_parts (
                outbox_id TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
                idx INTEGER NOT NULL,
                body TEXT NOT NULL,
                nonce TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'dispatching', 'sent', 'unknown')),
                platform_message_id TEXT,
                dispatched_at_ms INTEGER,
                sent_at_ms INTEGER,
                PRIMARY KEY (outbox_id, idx)
            ) STRICT;
            CREATE TABLE outbox_attempts (
                outbox_id TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
                at_ms INTEGER NOT NULL,
                part_idx INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                detail TEXT
            ) STRICT;
            CREATE INDEX outbox_attempts_row ON outbox_attempts (outbox_id);
            CREATE TABLE inbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                outbox_id TEXT NOT NULL UNIQUE,
                target TEXT NOT NULL,
                text TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL
            ) STRICT;
        ",
    },
    Migration {
        version: 4,
        name: "sessions",
        sql: "
            CREATE TABLE sessions (
                key TEXT PRIMARY KEY,
                agent_id TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('main', 'isolated', 'named')),
                job_id TEXT,
                run_id TEXT,
                created_at_ms INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL,
                finished_at_ms INTEGER,
                last_route_json TEXT,
                model TEXT,
                input_tokens INTEGER NOT NULL DEFAULT 0,
                output_tokens INTEGER NOT NULL DEFAULT 0
            ) STRICT;
            CREATE INDEX sessions_finished ON sessions (kind, finished_at_ms);
            CREATE TABLE transcript (
                session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'event')),
                content TEXT NOT NULL,
                at_ms INTEGER NOT NULL,
                meta_json TEXT,
                PRIMARY KEY (session_key, seq)
            ) STRICT;
            CREATE TABLE pending_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                session_key TEXT NOT NULL,
                text TEXT NOT NULL,
                source TEXT,
                created_at_ms INTEGER NOT NULL
            ) STRICT;
        ",
    },
    Migration {
        version: 5,
        name: "devices",
        sql: "
            CREATE TABLE devices (
                device_id TEXT PRIMARY KEY,
                public_key TEXT NOT NULL,
                display_name TEXT,
                label TEXT,
                platform TEXT,
                device_family TEXT,
                client_id TEXT,
                client_mode TEXT,
                roles_json TEXT NOT NULL,
                scopes_json TEXT NOT NULL,
                approved_via TEXT,
                created_at_ms INTEGER NOT NULL,
                approved_at_ms INTEGER,
                last_seen_at_ms INTEGER,
                last_seen_ip TEXT
            ) STRICT;
            CREATE TABLE device_tokens (
                device_id TEXT NOT NULL REFERENCES devices (device_id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                token_hash TEXT NOT NULL,
                scopes_json TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL,
                rotated_at_ms INTEGER,
                revoked_at_ms INTEGER,
                last_used_at_ms INTEGER,
                PRIMARY KEY (device_id, role)
            ) STRICT;
            CREATE TABLE pairing_requests (
                request_id TEXT PRIMARY KEY,
                device_id TEXT NOT NULL,
                public_key TEXT NOT NULL,
                reason TEXT NOT NULL CHECK (reason IN ('not-paired', 'role-upgrade', 'scope-upgrade', 'metadata-upgrade')),
                role TEXT NOT NULL,
                scopes_json TEXT NOT NULL,
                client_json TEXT NOT NULL,
                remote_ip TEXT,
                created_at_ms INTEGER NOT NULL,
                refreshed_at_ms INTEGER NOT NULL,
                expires_at_ms INTEGER NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'superseded', 'expired')),
                resolved_at_ms INTEGER
            ) STRICT;
            CREATE INDEX pairing_requests_device ON pairing_requests (device_id, status);
            CREATE TABLE audit_log (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at_ms INTEGER NOT NULL,
                action TEXT NOT NULL,
                device_id TEXT,
                remote_ip TEXT,
                conn_id TEXT,
                client_id TEXT,
                detail_json TEXT NOT NULL
            ) STRICT;
            CREATE INDEX audit_log_at ON audit_log (at_ms);
        ",
    },
    Migration {
        version: 6,
        name: "outbox queue order",
        sql: "CREATE INDEX outbox_open_seq ON outbox (seq) WHERE state IN ('pending', 'sending');",
    },
    Migration {
        version: 7,
        name: "cron list order",
        // One index per `cron.list` order (covering: the enabled filter is read from the index),
        // and the job counts kept by triggers, so a page costs its own rows, not the whole set.
        sql: "
            CREATE INDEX cron_jobs_by_next ON cron_jobs (next_run_at_ms, id, enabled);
            CREATE INDEX cron_jobs_by_updated ON cron_jobs (updated_at_ms, id, enabled);
            CREATE INDEX cron_jobs_by_name ON cron_jobs (name COLLATE NOCASE, id, enabled);
            CREATE TABLE cron_job_counts (
                enabled INTEGER NOT NULL,
                scheduled INTEGER NOT NULL,
                jobs INTEGER NOT NULL,
                PRIMARY KEY (enabled, scheduled)
            ) STRICT;
            INSERT INTO cron_job_counts (enabled, scheduled, jobs)
                SELECT e.v, s.v, (SELECT count(*) FROM cron_jobs j
                                  WHERE (j.enabled != 0) = e.v AND (j.next_run_at_ms IS NOT NULL) = s.v)
                FROM (SELECT 0 AS v UNION ALL SELECT 1) e, (SELECT 0 AS v UNION ALL SELECT 1) s;
            CREATE TRIGGER cron_jobs_count_insert AFTER INSERT ON cron_jobs BEGIN
                UPDATE cron_job_counts SET jobs = jobs + 1
                WHERE enabled = (NEW.enabled != 0) AND scheduled = (NEW.next_run_at_ms IS NOT NULL);
            END;
            CREATE TRIGGER cron_jobs_count_delete AFTER DELETE ON cron_jobs BEGIN
                UPDATE cron_job_counts SET jobs = jobs - 1
                WHERE enabled = (OLD.enabled != 0) AND scheduled = (OLD.next_run_at_ms IS NOT NULL);
            END;
            CREATE TRIGGER cron_jobs_count_update AFTER UPDATE OF enabled, next_run_at_ms ON cron_jobs
            WHEN (OLD.enabled != 0) != (NEW.enabled != 0)
                OR (OLD.next_run_at_ms IS NOT NULL) != (NEW.next_run_at_ms IS NOT NULL)
            BEGIN
                UPDATE cron_job_counts SET jobs = jobs - 1
                WHERE enabled = (OLD.enabled != 0) AND scheduled = (OLD.next_run_at_ms IS NOT NULL);
                UPDATE cron_job_counts SET jobs = jobs + 1
                WHERE enabled = (NEW.enabled != 0) AND scheduled = (NEW.next_run_at_ms IS NOT NULL);
            END;
        ",
    },
    Migration {
        version: 8,
        name: "cron schedule index",
        // Covers what the scheduler keeps in memory (id, enabled, next fire), so it loads 100,000
        // jobs from the index alone; it serves every query the old `cron_jobs_due` did.
        sql: "DROP INDEX cron_jobs_due;
              CREATE INDEX cron_jobs_schedule ON cron_jobs (enabled, next_run_at_ms, id);",
    },
    Migration {
        version: 9,
        name: "cron declaration keys",
        // `cron.add` with a `declarationKey` looks the key up from the scheduler's actor: an index,
        // not a scan of every job's JSON, so a declaration costs the same with 100,000 jobs.
        sql: "CREATE INDEX cron_jobs_by_declaration_key ON cron_jobs (json_extract(job_json, '$.declarationKey'))
              WHERE json_extract(job_json, '$.declarationKey') IS NOT NULL;",
    },
    Migration {
        version: 10,
        name: "inbound chat",
        // A channel's poll cursor and the messages it confirmed commit together; a reply's outbox
        // row quotes the message it answers (`reply_to`); approved senders and pairing codes.
        sql: "CREATE TABLE inbound_cursors (
                channel TEXT PRIMARY KEY,
                next_offset INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL
            ) STRICT;
            CREATE TABLE inbound_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                channel TEXT NOT NULL,
                external_id TEXT NOT NULL,
                session_key TEXT NOT NULL,
                chat_id TEXT NOT NULL,
                thread_id TEXT,
                message_id TEXT NOT NULL,
                sender_id TEXT NOT NULL,
                sender_name TEXT,
                text TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('queued', 'answered', 'failed')),
                received_at_ms INTEGER NOT NULL,
                finished_at_ms INTEGER,
                delivery_id TEXT,
                UNIQUE (channel, external_id)
            ) STRICT;
            CREATE INDEX inbound_messages_queued ON inbound_messages (seq) WHERE state = 'queued';
            CREATE TABLE channel_allow (
                channel TEXT NOT NULL,
                sender_id TEXT NOT NULL,
                sender_name TEXT,
                approved_at_ms INTEGER NOT NULL,
                PRIMARY KEY (channel, sender_id)
            ) STRICT;
            CREATE TABLE channel_pairing (
                channel TEXT NOT NULL,
                code TEXT NOT NULL,
                sender_id TEXT NOT NULL,
                sender_name TEXT,
                chat_id TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL,
                expires_at_ms INTEGER NOT NULL,
                PRIMARY KEY (channel, code),
                UNIQUE (channel, sender_id)
            ) STRICT;
            ALTER TABLE outbox ADD COLUMN reply_to TEXT;",
    },
    Migration {
        version: 11,
        name: "tool calls",
        // Tool results become transcript entries of their own (a CHECK cannot be altered, so the
        // table is rebuilt), and each tool call is open from the commit of the assistant message
        // that made it until its result commits: whatever is still open after a crash gets an
        // "interrupted" result, so no dangling call breaks the session's next request.
        sql: "
            CREATE TABLE transcript_v11 (
                session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'event', 'toolResult')),
                content TEXT NOT NULL,
                at_ms INTEGER NOT NULL,
                meta_json TEXT,
                PRIMARY KEY (session_key, seq)
            ) STRICT;
            INSERT INTO transcript_v11 (session_key, seq, role, content, at_ms, meta_json)
                SELECT session_key, seq, role, content, at_ms, meta_json FROM transcript;
            DROP TABLE transcript;
            ALTER TABLE transcript_v11 RENAME TO transcript;
            CREATE TABLE open_tool_calls (
                session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
                call_id TEXT NOT NULL,
                name TEXT NOT NULL,
                run_id TEXT,
                at_ms INTEGER NOT NULL,
                PRIMARY KEY (session_key, call_id)
            ) STRICT;
        ",
    },
    Migration {
        version: 12,
        name: "session ids",
        // OpenClaw's split of a session key (where a conversation happens) from its session id
        // (one transcript): `/new` and `sessions.reset` point the key at a fresh id and keep the
        // old transcript under the old id, listed in `session_archive`. Seqs keep counting per key,
        // so a reader's cursor never lands inside the new transcript by accident.
        sql: "
            ALTER TABLE sessions ADD COLUMN session_id TEXT;
            UPDATE sessions SET session_id = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4'
                || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1)
                || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)));
            CREATE UNIQUE INDEX sessions_by_session_id ON sessions (session_id);
            ALTER TABLE transcript ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
            UPDATE transcript SET session_id =
                COALESCE((SELECT s.session_id FROM sessions s WHERE s.key = transcript.session_key), '');
            CREATE TABLE session_archive (
                session_id TEXT PRIMARY KEY,
                session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
                messages INTEGER NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                archived_at_ms INTEGER NOT NULL,
                reason TEXT NOT NULL
            ) STRICT;
            CREATE INDEX session_archive_by_key ON session_archive (session_key, archived_at_ms);
        ",
    },
    Migration {
        version: 13,
        name: "inbound decisions",
        // Every inbound message a channel decided on (answered, refused, offered a code), by its
        // platform id: a redelivery (a Slack envelope never acked, a Telegram webhook retry) is
        // neither decided nor audited twice. Rows older than a week are dropped as new ones come.
        sql: "
            CREATE TABLE inbound_decisions (
                channel TEXT NOT NULL,
                external_id TEXT NOT NULL,
                decided_at_ms INTEGER NOT NULL,
                PRIMARY KEY (channel, external_id)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX inbound_decisions_at ON inbound_decisions (decided_at_ms);
        ",
    },
    Migration {
        version: 14,
        name: "cron scratch",
        // OpenClaw's private per-job scratch (`cron.scratch.get|set`): one row per job that has
        // ever had scratch, kept apart from the job so no list or history carries it. A cleared
        // scratch keeps its row (content NULL) so the revision keeps counting; the job's delete
        // removes it.
        sql: "CREATE TABLE cron_job_scratch (
                job_id TEXT PRIMARY KEY,
                content TEXT,
                revision INTEGER NOT NULL CHECK (revision >= 1),
                updated_at_ms INTEGER NOT NULL
            ) STRICT;",
    },
    Migration {
        version: 15,
        name: "session patch and archive",
        // `sessions.patch`: a label the user gave, a model the session's next turns use instead of
        // the default, and OpenClaw's archive (kept with its transcript, out of the default list;
        // `archive_reason` is `manual`, `age-retention` or `cap`).
        sql: "
            ALTER TABLE sessions ADD COLUMN label TEXT;
            ALTER TABLE sessions ADD COLUMN model_override TEXT;
            ALTER TABLE sessions ADD COLUMN archived_at_ms INTEGER;
            ALTER TABLE sessions ADD COLUMN archive_reason TEXT;
        ",
    },
    Migration {
        version: 16,
        name: "activity ledger",
        // OpenClaw's activity ledger (`audit.activity.list`): agent runs, tool actions and chat
        // messages, one row per start or end, in one global order (`seq`, the paging cursor).
        // Triggers on the tables that already record these write the rows, in the transaction
        // that records the fact, so the ledger can neither miss nor invent one after a crash.
        // Metadata only: no message text, tool arguments or results; sender, chat, account and
        // target ids are kept raw here (as in the tables they come from) and leave the gateway
        // only as keyed hashes (`auditRefKey`). The newest 100,000 rows are kept.
        // (A chat's inbound rows keep its short session key, `main`; its session's is `agent:main:main`.)
        // Two indexes only, by run (the triggers' own lookups, `audit.run.inspect`) and by session:
        // every row goes into each index in the commit of a tool step, and an agent or a kind
        // filter (few distinct values) reads the newest rows along `seq` just as fast.
        sql: "
            CREATE TABLE activity (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                source_seq INTEGER NOT NULL,
                at_ms INTEGER NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('agent_run', 'tool_action', 'message')),
                action TEXT NOT NULL,
                status TEXT NOT NULL,
                error_code TEXT,
                actor_type TEXT NOT NULL,
                actor_id TEXT NOT NULL,
                agent_id TEXT,
                session_key TEXT,
                session_id TEXT,
                run_id TEXT,
                tool_call_id TEXT,
                tool_name TEXT,
                direction TEXT,
                channel TEXT,
                conversation_kind TEXT,
                outcome TEXT,
                failure_stage TEXT,
                delivery_kind TEXT,
                duration_ms INTEGER,
                account_id TEXT,
                conversation_id TEXT,
                target_id TEXT,
                message_id TEXT
            ) STRICT;
            CREATE INDEX activity_by_run ON activity (run_id, seq) WHERE run_id IS NOT NULL;
            CREATE INDEX activity_by_session ON activity (session_key, seq) WHERE session_key IS NOT NULL;
            CREATE INDEX inbound_messages_by_delivery ON inbound_messages (delivery_id) WHERE delivery_id IS NOT NULL;
            INSERT OR IGNORE INTO meta (key, value) VALUES ('auditRefKey', lower(hex(randomblob(32))));

            CREATE TRIGGER activity_keep_newest AFTER INSERT ON activity WHEN NEW.seq % 1000 = 0 BEGIN
                DELETE FROM activity WHERE seq <= NEW.seq - 100000;
            END;

            CREATE TRIGGER activity_run_started AFTER INSERT ON transcript
            WHEN NEW.role IN ('user', 'event') AND json_extract(NEW.meta_json, '$.runId') IS NOT NULL
            BEGIN
                INSERT INTO activity (source_seq, at_ms, kind, action, status, actor_type, actor_id, agent_id,
                                      session_key, session_id, run_id)
                SELECT NEW.seq, NEW.at_ms, 'agent_run', 'agent.run.started', 'started', 'agent', s.agent_id,
                       s.agent_id, NEW.session_key, NULLIF(NEW.session_id, ''), json_extract(NEW.meta_json, '$.runId')
                FROM sessions s WHERE s.key = NEW.session_key
                  AND NOT EXISTS (SELECT 1 FROM activity a WHERE a.run_id = json_extract(NEW.meta_json, '$.runId')
                                  AND a.action = 'agent.run.started');
            END;

            CREATE TRIGGER activity_run_finished AFTER INSERT ON transcript
            WHEN json_extract(NEW.meta_json, '$.runId') IS NOT NULL
              AND ((NEW.role = 'assistant' AND json_extract(NEW.meta_json, '$.toolCalls') IS NULL)
                OR (NEW.role = 'system' AND (json_extract(NEW.meta_json, '$.error') IS NOT NULL
                                             OR json_extract(NEW.meta_json, '$.aborted') IS NOT NULL)))
            BEGIN
                INSERT INTO activity (source_seq, at_ms, kind, action, status, error_code, actor_type, actor_id,
                                      agent_id, session_key, session_id, run_id)
                SELECT NEW.seq, NEW.at_ms, 'agent_run', 'agent.run.finished', v.status,
                       CASE v.status WHEN 'succeeded' THEN NULL ELSE 'run_' || v.status END,
                       'agent', s.agent_id, s.agent_id, NEW.session_key, NULLIF(NEW.session_id, ''),
                       json_extract(NEW.meta_json, '$.runId')
                FROM sessions s,
                     (SELECT CASE
                        WHEN json_extract(NEW.meta_json, '$.aborted') THEN 'cancelled'
                        WHEN NEW.role = 'assistant' THEN 'succeeded'
                        WHEN json_extract(NEW.meta_json, '$.errorReason') = 'timeout' THEN 'timed_out'
                        ELSE 'failed' END AS status) v
                WHERE s.key = NEW.session_key
                  AND NOT EXISTS (SELECT 1 FROM activity a WHERE a.run_id = json_extract(NEW.meta_json, '$.runId')
                                  AND a.action = 'agent.run.finished');
            END;

            CREATE TRIGGER activity_cron_run_finished AFTER UPDATE OF status ON cron_runs
            WHEN OLD.status = 'running' AND NEW.status != 'running'
            BEGIN
                INSERT INTO activity (source_seq, at_ms, kind, action, status, error_code, actor_type, actor_id,
                                      agent_id, session_key, session_id, run_id)
                SELECT a.seq, COALESCE(NEW.finished_at_ms, a.at_ms), 'agent_run', 'agent.run.finished',
                       CASE NEW.status WHEN 'ok' THEN 'succeeded' ELSE 'failed' END,
                       CASE NEW.status WHEN 'ok' THEN NULL ELSE 'run_failed' END,
                       'agent', a.agent_id, a.agent_id, a.session_key, a.session_id, NEW.run_id
                FROM activity a
                WHERE a.run_id = NEW.run_id AND a.action = 'agent.run.started'
                  AND NOT EXISTS (SELECT 1 FROM activity f WHERE f.run_id = NEW.run_id
                                  AND f.action = 'agent.run.finished');
            END;

            CREATE TRIGGER activity_tool_started AFTER INSERT ON open_tool_calls
            WHEN NEW.run_id IS NOT NULL
            BEGIN
                INSERT INTO activity (source_seq, at_ms, kind, action, status, actor_type, actor_id, agent_id,
                                      session_key, session_id, run_id, tool_call_id, tool_name)
                SELECT NEW.rowid, NEW.at_ms, 'tool_action', 'tool.action.started', 'started', 'agent', s.agent_id,
                       s.agent_id, NEW.session_key, s.session_id, NEW.run_id, NEW.call_id, NEW.name
                FROM sessions s WHERE s.key = NEW.session_key
                  AND NOT EXISTS (SELECT 1 FROM activity a WHERE a.run_id = NEW.run_id
                                  AND a.tool_call_id = NEW.call_id AND a.action = 'tool.action.started');
            END;

            CREATE TRIGGER activity_tool_finished AFTER INSERT ON transcript
            WHEN NEW.role = 'toolResult' AND json_extract(NEW.meta_json, '$.runId') IS NOT NULL
            BEGIN
                INSERT INTO activity (source_seq, at_ms, kind, action, status, error_code, actor_type, actor_id,
                                      agent_id, session_key, session_id, run_id, tool_call_id, tool_name)
                SELECT NEW.seq, NEW.at_ms, 'tool_action', 'tool.action.finished', v.status,
                       CASE v.status WHEN 'succeeded' THEN NULL WHEN 'unknown' THEN 'tool_outcome_unknown'
                            ELSE 'tool_' || v.status END,
                       'agent', s.agent_id, s.agent_id, NEW.session_key, NULLIF(NEW.session_id, ''),
                       json_extract(NEW.meta_json, '$.runId'), json_extract(NEW.meta_json, '$.toolCallId'),
                       json_extract(NEW.meta_json, '$.toolName')
                FROM sessions s,
                     (SELECT CASE
                        WHEN NOT COALESCE(json_extract(NEW.meta_json, '$.isError'), 0) THEN 'succeeded'
                        WHEN json_extract(NEW.meta_json, '$.errorClass') = 'interrupted' THEN 'unknown'
                        WHEN json_extract(NEW.meta_json, '$.errorClass') = 'timeout' THEN 'timed_out'
                        WHEN json_extract(NEW.meta_json, '$.errorClass') = 'cancelled' THEN 'cancelled'
                        ELSE 'failed' END AS status) v
                WHERE s.key = NEW.session_key;
            END;

            CREATE TRIGGER activity_inbound_processed AFTER UPDATE OF state ON inbound_messages
            WHEN OLD.state = 'queued' AND NEW.state != 'queued'
            BEGIN
                INSERT INTO activity (source_seq, at_ms, kind, action, status, error_code, actor_type, actor_id,
                                      agent_id, direction, channel, conversation_kind, outcome, duration_ms,
                                      conversation_id, message_id)
                VALUES (NEW.seq, COALESCE(NEW.finished_at_ms, NEW.received_at_ms), 'message',
                        'message.inbound.processed',
                        CASE NEW.state WHEN 'answered' THEN 'succeeded' ELSE 'failed' END,
                        CASE NEW.state WHEN 'answered' THEN NULL ELSE 'message_processing_failed' END,
                        'channel_sender', NEW.sender_id,
                        (SELECT s.agent_id FROM sessions s
                         WHERE s.key IN (NEW.session_key, 'agent:main:' || NEW.session_key) LIMIT 1),
                        'inbound', NEW.channel,
                        CASE WHEN NEW.chat_id = NEW.sender_id THEN 'direct' ELSE 'unknown' END,
                        CASE NEW.state WHEN 'answered' THEN 'completed' ELSE 'failed' END,
                        MAX(0, COALESCE(NEW.finished_at_ms, NEW.received_at_ms) - NEW.received_at_ms),
                        NEW.chat_id, NEW.message_id);
            END;

            CREATE TRIGGER activity_outbound_finished AFTER UPDATE OF state ON outbox
            WHEN OLD.state != NEW.state AND NEW.state IN ('delivered', 'dead', 'unknown')
            BEGIN
                INSERT INTO activity (source_seq, at_ms, kind, action, status, error_code, actor_type, actor_id,
                                      agent_id, run_id, direction, channel, conversation_kind, outcome,
                                      failure_stage, delivery_kind, duration_ms, account_id, conversation_id,
                                      target_id)
                SELECT NEW.seq, COALESCE(NEW.settled_at_ms, NEW.updated_at_ms), 'message',
                       'message.outbound.finished',
                       CASE NEW.state WHEN 'delivered' THEN 'succeeded' WHEN 'dead' THEN 'failed' ELSE 'unknown' END,
                       CASE NEW.state WHEN 'dead' THEN 'message_delivery_failed' END,
                       CASE WHEN o.agent_id IS NULL THEN 'system' ELSE 'agent' END,
                       COALESCE(o.agent_id, 'gateway'), o.agent_id, o.run_id, 'outbound', NEW.channel, 'unknown',
                       CASE NEW.state WHEN 'delivered' THEN 'sent' WHEN 'dead' THEN 'failed' ELSE 'unknown' END,
                       CASE NEW.state WHEN 'delivered' THEN NULL ELSE 'platform_send' END,
                       CASE NEW.state WHEN 'delivered' THEN 'text' END,
                       MAX(0, COALESCE(NEW.settled_at_ms, NEW.updated_at_ms) - NEW.created_at_ms),
                       NEW.account_id, NEW.target, NEW.target
                FROM (SELECT
                        CASE WHEN NEW.origin_kind IN ('cron', 'agent-reply') THEN NEW.origin_id END AS run_id,
                        CASE WHEN NEW.origin_kind IN ('cron', 'agent-reply')
                             THEN (SELECT a.agent_id FROM activity a WHERE a.run_id = NEW.origin_id
                                   AND a.agent_id IS NOT NULL LIMIT 1)
                             WHEN NEW.origin_kind = 'reply'
                             THEN (SELECT s.agent_id FROM inbound_messages i JOIN sessions s
                                   ON s.key IN (i.session_key, 'agent:main:' || i.session_key)
                                   WHERE i.delivery_id = NEW.id LIMIT 1)
                        END AS agent_id) o;
            END;
        ",
    },
];

/// The schema version this build writes.
pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

pub(crate) fn current_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", (), |r| r.get(0))?)
}

/// Brings the database to [`LATEST_VERSION`], backing up a non-empty older database first.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let version = current_version(conn)?;
    if version > LATEST_VERSION {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            message: format!(
                "the database has schema v{version}, newer than this Pincer understands (v{LATEST_VERSION}); install a newer Pincer"
            ),
        });
    }
    if version == LATEST_VERSION {
        return Ok(());
    }
    if version > 0 {
        let backup = path.with_extension(format!("db.pre-v{LATEST_VERSION}.bak"));
        if !backup.exists() {
            // Created owner-only first: VACUUM INTO fills an empty file and keeps its mode.
            crate::files::create_private(&backup).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: format!("cannot create the backup {}: {e}", backup.display()),
            })?;
            conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()])?;
            tracing::info!(backup = %backup.display(), from = version, to = LATEST_VERSION, "store: backed up before migrating");
        }
    }
    migrate_to(conn, LATEST_VERSION)
}

/// Applies every migration above the current version up to `target`.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let from = current_version(conn)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > from && m.version <= target) {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)
            .map_err(|e| StoreError::Invalid(format!("migration v{} ({}) failed: {e}", m.version, m.name)))?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
        tracing::debug!(version = m.version, name = m.name, "store: migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// Rows written by each schema version, to check that upgrades keep them.
    fn seed(conn: &Connection, version: i64) {
        if version >= 1 {
            conn.execute_batch("INSERT INTO meta(key, value) VALUES ('instanceId', 'seeded-v1'), ('boots', '41');")
                .unwrap();
        }
        if version >= 2 {
            conn.execute_batch(
                "INSERT INTO cron_jobs VALUES ('j1', 'seeded', 1, '{\"id\":\"j1\"}', '{}', 1000, 1, 2);
                 INSERT INTO cron_runs VALUES ('cron:j1:1000', 'j1', 1000, 'scheduled', 'ok', 1, NULL, 1000, 1200,
                   'not-requested', 'succeeded', '{}');",
            )
            .unwrap();
        }
        if version >= 3 {
            conn.execute_batch(
                "INSERT INTO outbox (id, idempotency_key, origin_kind, origin_id, channel, target, conversation, state,
                   attempts, max_attempts, next_attempt_at_ms, created_at_ms, updated_at_ms, best_effort, body)
                 VALUES ('o1', 'k1', 'cron', 'cron:j1:1000', 'discord', 'channel:1', 'discord||channel:1|', 'pending',
                   0, 5, 1000, 1000, 1000, 0, 'hello');
                 INSERT INTO outbox_parts (outbox_id, idx, body, nonce, state) VALUES ('o1', 0, 'hello', 'n1', 'pending');",
            )
            .unwrap();
        }
        if version >= 4 {
            conn.execute_batch(
                "INSERT INTO sessions (key, agent_id, kind, created_at_ms, updated_at_ms)
                   VALUES ('agent:main:main', 'main', 'main', 1, 2);
                 INSERT INTO transcript (session_key, seq, role, content, at_ms, meta_json)
                   VALUES ('agent:main:main', 1, 'user', 'hi', 1, NULL),
                   ('agent:main:main', 2, 'assistant', 'hello', 2, '{\"model\":\"m\"}');",
            )
            .unwrap();
        }
        if version >= 12 {
            conn.execute_batch(
                "UPDATE sessions SET session_id = '6c1f2a4e-0b7d-4c3e-9a51-2f8e7d6c5b4a';
                 UPDATE transcript SET session_id = '6c1f2a4e-0b7d-4c3e-9a51-2f8e7d6c5b4a';",
            )
            .unwrap();
        }
    }

    fn verify(store: &Store, version: i64) {
        if version >= 1 {
            let (id, boots) =
                store.read_blocking(|rd| Ok((rd.meta_get("instanceId")?, rd.meta_get("boots")?))).unwrap();
            assert_eq!(id.as_deref(), Some("seeded-v1"));
            assert_eq!(boots.as_deref(), Some("41"));
            assert_eq!(store.write_blocking(|tx| tx.record_boot()).unwrap(), 42);
        }
        if version >= 2 {
            let (job, run) = store.read_blocking(|rd| Ok((rd.get_job("j1")?, rd.get_run("cron:j1:1000")?))).unwrap();
            assert_eq!(job.unwrap().next_run_at_ms, Some(1000));
            // v7 counted the jobs already stored (`cron.list` totals come from the counts).
            assert_eq!(store.read_blocking(|rd| rd.job_counts()).unwrap(), (1, 1), "from v{version}");
            assert_eq!(run.unwrap().completion_status, Some(pincer_protocol::state::CompletionStatus::Succeeded));
        }
        if version >= 3 {
            let leased = store
                .write_blocking(|tx| {
                    tx.lease_deliveries(
                        2000,
                        9,
                        9000,
                        &crate::outbox::LeaseLimits { others: 10, ..Default::default() },
                        10,
                    )
                })
                .unwrap();
            assert_eq!(leased.len(), 1);
            assert_eq!(leased[0][0].parts[0].body, "hello");
        }
        if version >= 4 {
            let key = "agent:main:main";
            let rows = store.read_blocking(|rd| rd.transcript(key, 10, None)).unwrap();
            let got: Vec<(&str, &str)> = rows.iter().map(|r| (r.role.as_str(), r.content.as_str())).collect();
            assert_eq!(got, [("user", "hi"), ("assistant", "hello")]);
            assert_eq!(rows[1].meta_json.as_deref(), Some("{\"model\":\"m\"}"));
            // The rebuilt table takes tool results and the open-call ledger works.
            let open = store
                .write_blocking(move |tx| {
                    tx.open_tool_calls(key, Some("r"), &[("c1", "read")], 3)?;
                    tx.append_transcript(key, "toolResult", "ok", 4, None)?;
                    tx.take_open_tool_calls(Some(key))
                })
                .unwrap();
            assert_eq!(open.len(), 1);
            // v12 gave the session an id and its transcript kept it.
            let session = store.read_blocking(move |rd| rd.get_session(key)).unwrap().unwrap();
            assert_eq!(session.session_id.len(), 36, "from v{version}: {}", session.session_id);
            let (owner, rows) =
                store.read_blocking(move |rd| rd.transcript_by_id(&session.session_id)).unwrap().unwrap();
            assert_eq!((owner.as_str(), rows.len()), (key, 3), "from v{version}");
        }
    }

    #[test]
    fn every_earlier_version_upgrades_and_keeps_its_rows() {
        for version in 0..=LATEST_VERSION {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pincer.db");
            {
                let mut conn = Connection::open(&path).unwrap();
                migrate_to(&mut conn, version).unwrap();
                assert_eq!(current_version(&conn).unwrap(), version);
                seed(&conn, version);
            }
            let store = Store::open(&path).unwrap();
            assert_eq!(store.read_blocking(|rd| rd.schema_version()).unwrap(), LATEST_VERSION, "from v{version}");
            verify(&store, version);
            let backup = path.with_extension(format!("db.pre-v{LATEST_VERSION}.bak"));
            assert_eq!(backup.exists(), version > 0 && version < LATEST_VERSION, "backup from v{version}");
            if backup.exists() {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "backup from v{version} is owner-only");
            }
        }
    }

    #[test]
    fn newer_database_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pincer.db");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", LATEST_VERSION + 1).unwrap();
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("install a newer Pincer"), "{err}");
    }

    #[test]
    fn schema_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pincer.db")).unwrap();
        drop(store);
        let conn = Connection::open(dir.path().join("pincer.db")).unwrap();
        let mut stmt = conn.prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").unwrap();
        let schema: Vec<String> =
            stmt.query_map((), |r| r.get::<_, String>(0)).unwrap().map(|r| r.unwrap() + ";").collect();
        expect_test::expect_file!["../schema.sql"].assert_eq(&(schema.join("\n") + "\n"));
    }
}
