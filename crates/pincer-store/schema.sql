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
CREATE TRIGGER activity_keep_newest AFTER INSERT ON activity WHEN NEW.seq % 1000 = 0 BEGIN
                DELETE FROM activity WHERE seq <= NEW.seq - 100000;
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
CREATE TABLE cron_job_counts (
                enabled INTEGER NOT NULL,
                scheduled INTEGER NOT NULL,
                jobs INTEGER NOT NULL,
                PRIMARY KEY (enabled, scheduled)
            ) STRICT;
CREATE TABLE cron_job_scratch (
                job_id TEXT PRIMARY KEY,
                content TEXT,
                revision INTEGER NOT NULL CHECK (revision >= 1),
                updated_at_ms INTEGER NOT NULL
            ) STRICT;
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
CREATE INDEX cron_jobs_by_declaration_key ON cron_jobs (json_extract(job_json, '$.declarationKey'))
              WHERE json_extract(job_json, '$.declarationKey') IS NOT NULL;
CREATE INDEX cron_jobs_by_name ON cron_jobs (name COLLATE NOCASE, id, enabled);
CREATE INDEX cron_jobs_by_next ON cron_jobs (next_run_at_ms, id, enabled);
CREATE INDEX cron_jobs_by_updated ON cron_jobs (updated_at_ms, id, enabled);
CREATE TRIGGER cron_jobs_count_delete AFTER DELETE ON cron_jobs BEGIN
                UPDATE cron_job_counts SET jobs = jobs - 1
                WHERE enabled = (OLD.enabled != 0) AND scheduled = (OLD.next_run_at_ms IS NOT NULL);
            END;
CREATE TRIGGER cron_jobs_count_insert AFTER INSERT ON cron_jobs BEGIN
                UPDATE cron_job_counts SET jobs = jobs + 1
                WHERE enabled = (NEW.enabled != 0) AND scheduled = (NEW.next_run_at_ms IS NOT NULL);
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
CREATE INDEX cron_jobs_schedule ON cron_jobs (enabled, next_run_at_ms, id);
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
CREATE INDEX cron_runs_delivery ON cron_runs (delivery_status) WHERE delivery_status = 'pending';
CREATE INDEX cron_runs_job ON cron_runs (job_id, started_at_ms);
CREATE INDEX cron_runs_open ON cron_runs (status) WHERE status = 'running';
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
CREATE TABLE inbound_cursors (
                channel TEXT PRIMARY KEY,
                next_offset INTEGER NOT NULL,
                updated_at_ms INTEGER NOT NULL
            ) STRICT;
CREATE TABLE inbound_decisions (
                channel TEXT NOT NULL,
                external_id TEXT NOT NULL,
                decided_at_ms INTEGER NOT NULL,
                PRIMARY KEY (channel, external_id)
            ) STRICT, WITHOUT ROWID;
CREATE INDEX inbound_decisions_at ON inbound_decisions (decided_at_ms);
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
CREATE INDEX inbound_messages_by_delivery ON inbound_messages (delivery_id) WHERE delivery_id IS NOT NULL;
CREATE INDEX inbound_messages_queued ON inbound_messages (seq) WHERE state = 'queued';
CREATE TABLE inbox (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                outbox_id TEXT NOT NULL UNIQUE,
                target TEXT NOT NULL,
                text TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL
            ) STRICT;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE open_tool_calls (
                session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
                call_id TEXT NOT NULL,
                name TEXT NOT NULL,
                run_id TEXT,
                at_ms INTEGER NOT NULL,
                PRIMARY KEY (session_key, call_id)
            ) STRICT;
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
            , reply_to TEXT) STRICT;
CREATE TABLE outbox_attempts (
                outbox_id TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
                at_ms INTEGER NOT NULL,
                part_idx INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                detail TEXT
            ) STRICT;
CREATE INDEX outbox_attempts_row ON outbox_attempts (outbox_id);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at_ms);
CREATE INDEX outbox_open ON outbox (conversation, seq) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_open_seq ON outbox (seq) WHERE state IN ('pending', 'sending');
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
CREATE TABLE pending_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                session_key TEXT NOT NULL,
                text TEXT NOT NULL,
                source TEXT,
                created_at_ms INTEGER NOT NULL
            ) STRICT;
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
            , session_id TEXT, label TEXT, model_override TEXT, archived_at_ms INTEGER, archive_reason TEXT) STRICT;
CREATE UNIQUE INDEX sessions_by_session_id ON sessions (session_id);
CREATE INDEX sessions_finished ON sessions (kind, finished_at_ms);
CREATE TABLE sqlite_sequence(name,seq);
CREATE TABLE "transcript" (
                session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'event', 'toolResult')),
                content TEXT NOT NULL,
                at_ms INTEGER NOT NULL,
                meta_json TEXT, session_id TEXT NOT NULL DEFAULT '',
                PRIMARY KEY (session_key, seq)
            ) STRICT;
