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
