//! The scheduler through its public surface (`cron.*` over the protocol) under a fake clock:
//! exactly once per slot, DST, backoff, auto-disable, catch-up after downtime, interrupted runs,
//! timeouts, one-shots, bad input, and 10,000 jobs.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use crate::support::{T0, TestGateway, error_of, wait_job, wait_runs};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().timestamp_millis()
}

fn local(ms: i64, tz: &str) -> String {
    let zone: chrono_tz::Tz = tz.parse().unwrap();
    Utc.timestamp_millis_opt(ms).unwrap().with_timezone(&zone).format("%m-%d %H:%M %Z").to_string()
}

/// A command job that delivers nothing.
fn command_job(name: &str, schedule: Value, shell: &str) -> Value {
    json!({
        "name": name, "schedule": schedule, "sessionTarget": "isolated",
        "payload": {"kind": "command", "argv": ["sh", "-c", shell]}, "delivery": {"mode": "none"}
    })
}

async fn add(c: &mut pincer_testkit::ws::RawClient, params: Value) -> Value {
    c.call("cron.add", params).await.unwrap()
}

fn slots(runs: &[Value]) -> Vec<i64> {
    runs.iter().map(|r| r["slotMs"].as_i64().unwrap_or_else(|| panic!("run without slotMs: {r:#}"))).collect()
}

/// Advances the fake clock to the job's next run and waits for that run to complete.
async fn step_to_next(gw: &TestGateway, c: &mut pincer_testkit::ws::RawClient, id: &str, done: usize) -> Vec<Value> {
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    let next = job["state"]["nextRunAtMs"].as_i64().expect("job has a next run");
    gw.clock.set(next.max(gw.clock_now()));
    wait_runs(c, id, done + 1).await
}

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for TestGateway {
    fn clock_now(&self) -> i64 {
        use pincer_core::Clock;
        self.clock.now_ms()
    }
}

#[tokio::test]
async fn methods_round_trip_with_openclaw_shapes() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let a = add(&mut c, command_job("alpha", json!({"kind": "every", "everyMs": 60_000}), "true")).await;
    let b =
        add(&mut c, command_job("beta", json!({"kind": "cron", "expr": "0 7 * * *", "tz": "Europe/Berlin"}), "true"))
            .await;
    assert_eq!(a["schedule"]["anchorMs"], T0, "every anchors at creation");
    assert_eq!(a["deliveryPreview"]["label"], "not requested");
    assert_eq!(b["schedule"]["tz"], "Europe/Berlin");
    assert_eq!(b["schedule"]["staggerMs"], 0, "fixed hour: no default stagger");
    assert!(a["configRevision"].as_str().unwrap().starts_with("sha256:"));
    // Paging with the canonical metadata the OpenClaw CLI demands.
    let p1 = c.call("cron.list", json!({"limit": 1})).await.unwrap();
    assert_eq!(
        (p1["total"].as_u64(), p1["hasMore"].as_bool(), p1["nextOffset"].as_u64()),
        (Some(2), Some(true), Some(1))
    );
    assert_eq!(p1["jobs"][0]["name"], "alpha", "sorted by next run");
    let p2 = c.call("cron.list", json!({"limit": 1, "offset": 1})).await.unwrap();
    assert_eq!((p2["hasMore"].as_bool(), p2["nextOffset"].clone()), (Some(false), Value::Null));
    assert_eq!(p1["snapshotRevision"], p2["snapshotRevision"]);
    assert_eq!(p2["jobs"][0]["effectiveAgentId"], "main");
    // Partial update: null clears, the revision changes, a stale revision is refused.
    let id = a["id"].as_str().unwrap();
    let updated = c
        .call(
            "cron.update",
            json!({"id": id, "patch": {"description": "d", "payload": {"argv": ["sh", "-c", "echo hi"]}}}),
        )
        .await
        .unwrap();
    assert_eq!(updated["description"], "d");
    let res = c
        .request(
            "cron.update",
            json!({"id": id, "patch": {"enabled": false}, "expectedConfigRevision": a["configRevision"]}),
        )
        .await
        .unwrap();
    assert_eq!(res["error"]["details"]["code"], "CRON_JOB_CHANGED");
    let cleared = c.call("cron.update", json!({"jobId": id, "patch": {"description": null}})).await.unwrap();
    assert!(cleared.get("description").is_none());
    let p3 = c.call("cron.list", json!({})).await.unwrap();
    assert_ne!(p3["snapshotRevision"], p1["snapshotRevision"]);
    // Remove, then not found with the detail code.
    assert_eq!(c.call("cron.remove", json!({"id": id})).await.unwrap(), json!({"ok": true, "removed": true}));
    let res = c.request("cron.get", json!({"id": id})).await.unwrap();
    // OpenClaw's `cron.get` wording, which the stock CLI's `cron show <name>` falls back on.
    let want = format!("cron job not found: {id}. List automations and retry with a current job id.");
    assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), want));
    assert_eq!(res["error"]["details"], json!({"code": "CRON_JOB_NOT_FOUND", "jobId": id}));
    // Status.
    let status = c.call("cron.status", json!({})).await.unwrap();
    assert_eq!((status["enabled"].as_bool(), status["jobs"].as_u64()), (Some(true), Some(1)));
    gw.stop().await;
}

/// OpenClaw's `displayName` (`cron add/edit --display-name`): stored, shown, revised, cleared by
/// `null`, refused when blank or longer than 200 characters.
#[tokio::test]
async fn display_name_is_stored_updated_and_cleared() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut params = command_job("backup", json!({"kind": "every", "everyMs": 3_600_000}), "true");
    params["displayName"] = json!("Nightly backup");
    let job = add(&mut c, params.clone()).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["displayName"], "Nightly backup");
    let got = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(got["displayName"], "Nightly backup");
    let renamed = c.call("cron.update", json!({"id": id, "patch": {"displayName": "Backup"}})).await.unwrap();
    assert_eq!(renamed["displayName"], "Backup");
    assert_ne!(renamed["configRevision"], got["configRevision"], "the label is part of the definition");
    let cleared = c.call("cron.update", json!({"id": id, "patch": {"displayName": null}})).await.unwrap();
    assert!(cleared.get("displayName").is_none(), "{cleared}");
    for (label, want) in [
        (json!(" "), "invalid cron.add params: displayName: must not be blank"),
        (json!("x".repeat(201)), "invalid cron.add params: displayName: at most 200 characters"),
    ] {
        params["displayName"] = label;
        let res = c.request("cron.add", params.clone()).await.unwrap();
        assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), want.into()));
    }
    gw.stop().await;
}

/// OpenClaw's `pacing` (`cron add/edit --pacing-min/--pacing-max`, `--clear-pacing`): stored and
/// shown, replaced and cleared by a patch, and refused when it could never bound anything.
#[tokio::test]
async fn pacing_is_stored_shown_patched_cleared_and_checked() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut params = command_job("poll", json!({"kind": "every", "everyMs": 3_600_000}), "true");
    params["pacing"] = json!({"min": "15m"});
    let job = add(&mut c, params.clone()).await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["pacing"], json!({"min": "15m"}));
    let listed = c.call("cron.list", json!({})).await.unwrap();
    assert_eq!(listed["jobs"][0]["pacing"], json!({"min": "15m"}), "{listed}");
    // The CLI's `edit --pacing-max` sends the merged bounds.
    let got = c.call("cron.update", json!({"id": id, "patch": {"pacing": {"min": "15m", "max": "4h"}}})).await.unwrap();
    assert_eq!(got["pacing"], json!({"min": "15m", "max": "4h"}));
    assert_ne!(got["configRevision"], job["configRevision"], "pacing is part of the definition");
    let cleared = c.call("cron.update", json!({"id": id, "patch": {"pacing": null}})).await.unwrap();
    assert!(cleared.get("pacing").is_none(), "{cleared}");
    for (pacing, want) in [
        (json!({}), "invalid cron.add params: pacing: give at least one of min or max (e.g. --pacing-min 15m)"),
        (json!({"min": "2h", "max": "1h"}), "invalid cron.add params: pacing: min (2h) must not exceed max (1h)"),
        (
            json!({"min": "0s"}),
            "invalid cron.add params: pacing.min: must be a positive duration such as 15m, not \"0s\"",
        ),
    ] {
        params["pacing"] = pacing;
        let res = c.request("cron.add", params.clone()).await.unwrap();
        assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), want.into()));
    }
    params["pacing"] = json!({"min": "soon"});
    let (_, message) = error_of(&c.request("cron.add", params.clone()).await.unwrap());
    assert!(message.starts_with("invalid cron.add params: pacing.min: must be a positive duration"), "{message}");
    params["pacing"] = json!({"min": "1m", "every": "5m"});
    let (_, message) = error_of(&c.request("cron.add", params).await.unwrap());
    assert!(message.contains("unknown field `every`"), "{message}");
    gw.stop().await;
}

/// Pincer runs one agent: a job for any other (`--agent ops`) could never run, so `cron.add` and
/// `cron.update` refuse it, and `main` named explicitly is fine.
#[tokio::test]
async fn a_job_for_an_unknown_agent_is_refused_at_add_and_update() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut params = command_job("backup", json!({"kind": "every", "everyMs": 3_600_000}), "true");
    params["agentId"] = json!("ops");
    let res = c.request("cron.add", params.clone()).await.unwrap();
    let want = "invalid cron.add params: agentId: unknown agent id \"ops\": Pincer's agent is \"main\" (omit --agent or use main)";
    assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), want.into()));
    params["agentId"] = json!("main");
    let id = add(&mut c, params).await["id"].as_str().unwrap().to_string();
    let res = c.request("cron.update", json!({"id": id, "patch": {"agentId": "ops"}})).await.unwrap();
    assert_eq!(error_of(&res), ("INVALID_REQUEST".into(), want.replace("cron.add", "cron.update")));
    assert_eq!(c.call("cron.list", json!({})).await.unwrap()["total"], 1);
    gw.stop().await;
}

/// OpenClaw's `cron.scratch.get|set`: a job's private scratch with a compare-and-swap revision,
/// kept out of the job's read view, refused past 256 KiB, and deleted with the job.
#[tokio::test]
async fn a_jobs_scratch_is_compare_and_swapped_kept_private_and_deleted_with_the_job() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let id = add(&mut c, command_job("poll", json!({"kind": "every", "everyMs": 3_600_000}), "true")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let empty = c.call("cron.scratch.get", json!({"id": id})).await.unwrap();
    assert_eq!(empty, json!({"scratch": null, "currentRevision": 0, "maxBytes": 262_144}));
    // Clearing what was never written changes nothing.
    let noop = c.call("cron.scratch.set", json!({"id": id, "content": null})).await.unwrap();
    assert_eq!(noop, json!({"ok": true, "scratch": null, "currentRevision": 0, "maxBytes": 262_144}));

    let first =
        c.call("cron.scratch.set", json!({"jobId": id, "content": "seen: 3", "expectedRevision": 0})).await.unwrap();
    assert_eq!(
        first,
        json!({"ok": true, "scratch": {"content": "seen: 3", "revision": 1, "updatedAtMs": T0}, "currentRevision": 1, "maxBytes": 262_144})
    );
    // A writer that read revision 0 loses the race and writes nothing.
    let stale =
        c.call("cron.scratch.set", json!({"id": id, "content": "seen: 1", "expectedRevision": 0})).await.unwrap();
    assert_eq!(stale, json!({"ok": false, "reason": "revision-conflict", "currentRevision": 1}));
    gw.clock.advance(1_000);
    let got = c.call("cron.scratch.get", json!({"id": id})).await.unwrap();
    assert_eq!(got["scratch"], json!({"content": "seen: 3", "revision": 1, "updatedAtMs": T0}));
    // Empty content is a value; null clears and still counts a revision.
    let blank = c.call("cron.scratch.set", json!({"id": id, "content": "", "expectedRevision": 1})).await.unwrap();
    assert_eq!(blank["scratch"], json!({"content": "", "revision": 2, "updatedAtMs": T0 + 1_000}));
    let cleared = c.call("cron.scratch.set", json!({"id": id, "content": null})).await.unwrap();
    assert_eq!(cleared, json!({"ok": true, "scratch": null, "currentRevision": 3, "maxBytes": 262_144}));
    c.call("cron.scratch.set", json!({"id": id, "content": "kept"})).await.unwrap();

    // Private: neither the job nor the list carries it.
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    let listed = c.call("cron.list", json!({})).await.unwrap();
    assert!(!job.to_string().contains("kept") && !listed.to_string().contains("kept"), "{job} {listed}");

    let too_big = "x".repeat(262_145);
    let res = c.request("cron.scratch.set", json!({"id": id, "content": too_big})).await.unwrap();
    assert_eq!(
        error_of(&res),
        (
            "INVALID_REQUEST".into(),
            "invalid cron.scratch.set params: cron scratch exceeds 262144 bytes (262145 bytes provided); keep the \
             scratch short or store the rest in a file"
                .into()
        )
    );
    for (method, params, want) in [
        ("cron.scratch.set", json!({"id": id}), "missing field `content`"),
        ("cron.scratch.set", json!({"id": id, "content": "x", "revision": 1}), "unknown field `revision`"),
        ("cron.scratch.set", json!({"id": id, "content": "x", "expectedRevision": -1}), "expectedRevision"),
        ("cron.scratch.get", json!({"id": id, "content": "x"}), "unknown field `content`"),
        ("cron.scratch.get", json!({}), "id is required"),
    ] {
        let (code, message) = error_of(&c.request(method, params.clone()).await.unwrap());
        assert_eq!(code, "INVALID_REQUEST", "{method} {params}: {message}");
        assert!(message.contains(want), "{method} {params}: {message}");
    }
    let (_, message) = error_of(&c.request("cron.scratch.get", json!({"id": "nope"})).await.unwrap());
    assert!(message.starts_with("Automation not found: nope"), "{message}");

    // Deleted with its job.
    c.call("cron.remove", json!({"id": id})).await.unwrap();
    let (_, message) = error_of(&c.request("cron.scratch.get", json!({"id": id})).await.unwrap());
    assert!(message.starts_with("Automation not found"), "{message}");
    let db = rusqlite::Connection::open(&gw.paths.db_path).unwrap();
    let rows: i64 = db.query_row("SELECT COUNT(*) FROM cron_job_scratch", (), |r| r.get(0)).unwrap();
    assert_eq!(rows, 0, "the scratch row outlived its job");
    // An operator without admin cannot read it.
    let mut reader = gw.client(&["operator.read"]).await;
    let res = reader.request("cron.scratch.get", json!({"id": id})).await.unwrap();
    assert_eq!(error_of(&res), ("FORBIDDEN".into(), "missing scope: operator.admin".into()));
    gw.stop().await;
}

/// OpenClaw's `declarationKey`: the same key twice updates one job (its id, anchor and runs kept)
/// and never creates a second; the answer is OpenClaw's `{created, updated?, job}`.
#[tokio::test]
async fn a_declaration_key_added_twice_updates_one_job() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut params = command_job("backup", json!({"kind": "every", "everyMs": 3_600_000}), "true");
    params["declarationKey"] = json!("scripts/backup");
    params["description"] = json!("first");
    let first = c.call("cron.add", params.clone()).await.unwrap();
    assert_eq!((&first["created"], first.get("updated")), (&json!(true), None), "{first}");
    let id = first["job"]["id"].as_str().unwrap().to_string();
    assert_eq!(first["job"]["declarationKey"], "scripts/backup");
    gw.clock.advance(60_000);
    params.as_object_mut().unwrap().remove("description");
    params["name"] = json!("backup v2");
    let second = c.call("cron.add", params.clone()).await.unwrap();
    assert_eq!((&second["created"], &second["updated"]), (&json!(false), &json!(true)), "{second}");
    let job = &second["job"];
    assert_eq!((job["id"].as_str(), job["name"].as_str()), (Some(id.as_str()), Some("backup v2")));
    assert!(job.get("description").is_none(), "a field left out of the declaration is cleared: {job}");
    assert_eq!(job["schedule"]["anchorMs"], first["job"]["schedule"]["anchorMs"], "same everyMs keeps the anchor");
    assert_eq!(job["createdAtMs"], first["job"]["createdAtMs"]);
    let list = c.call("cron.list", json!({"includeDisabled": true})).await.unwrap();
    assert_eq!(list["total"], 1, "one job, never two: {list}");
    // Without a key, `cron.add` answers the job itself, as before.
    let plain = add(&mut c, command_job("plain", json!({"kind": "every", "everyMs": 60_000}), "true")).await;
    assert!(plain["id"].is_string() && plain.get("created").is_none(), "{plain}");
    // The key cannot be patched or blank.
    let res = c.request("cron.update", json!({"id": id, "patch": {"declarationKey": "other"}})).await.unwrap();
    assert!(error_of(&res).1.contains("declaration key cannot be changed"), "{res}");
    params["declarationKey"] = json!(" ");
    let res = c.request("cron.add", params.clone()).await.unwrap();
    assert_eq!(error_of(&res).1, "invalid cron.add params: declarationKey: must not be blank");
    // A new key declared by eight clients at once (each insert shares the commit pipeline): one
    // creates it, the others find it — never two jobs for one key.
    params["declarationKey"] = json!("scripts/racing");
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(gw.client(&["operator.admin"]).await);
    }
    let answers = futures_util::future::join_all(clients.iter_mut().map(|c| c.call("cron.add", params.clone()))).await;
    let created = answers.iter().filter(|a| a.as_ref().unwrap()["created"] == json!(true)).count();
    let ids: std::collections::BTreeSet<String> =
        answers.iter().map(|a| a.as_ref().unwrap()["job"]["id"].as_str().unwrap().to_string()).collect();
    assert_eq!((created, ids.len()), (1, 1), "{answers:?}");
    gw.stop().await;
}

/// Every job of `params`' listing, paging `limit` at a time, with each page's `total`.
async fn list_all(c: &mut pincer_testkit::ws::RawClient, params: Value, limit: u64) -> (Vec<Value>, Vec<u64>) {
    let (mut jobs, mut totals, mut offset) = (Vec::new(), Vec::new(), 0);
    loop {
        let mut p = params.clone();
        p["limit"] = json!(limit);
        p["offset"] = json!(offset);
        let page = c.call("cron.list", p).await.unwrap();
        let got = page["jobs"].as_array().unwrap().clone();
        assert!(got.len() as u64 <= limit);
        totals.push(page["total"].as_u64().unwrap());
        jobs.extend(got);
        match page["nextOffset"].as_u64() {
            Some(n) => {
                assert_eq!((page["hasMore"].as_bool(), n), (Some(true), offset + limit), "{page:#}");
                offset = n;
            }
            None => return (jobs, totals),
        }
    }
}

#[tokio::test]
async fn list_pages_keep_every_order_and_filter_and_paused_jobs_stay_last() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut ids = Vec::new();
    for i in 0..23u64 {
        // Repeated fire times (ties go by id), names in mixed case, the agent named or implied, two kinds.
        let schedule = if i % 2 == 0 {
            json!({"kind": "every", "everyMs": 60_000 * (1 + i % 4)})
        } else {
            json!({"kind": "cron", "expr": format!("{} 7 * * *", i % 3), "tz": "UTC"})
        };
        let mut job = command_job(["Delta", "alpha", "Charlie", "bravo"][i as usize % 4], schedule, "true");
        if i % 3 == 0 {
            job["agentId"] = json!("main");
        }
        job["description"] = json!(format!("job number {i}"));
        job["enabled"] = json!(i % 5 != 0);
        ids.push(add(&mut c, job).await["id"].as_str().unwrap().to_string());
    }
    let mut all = Vec::new();
    for id in &ids {
        all.push(c.call("cron.get", json!({"id": id})).await.unwrap());
    }
    let next = |j: &Value| j["state"]["nextRunAtMs"].as_i64();
    assert!(all.iter().any(|j| next(j).is_none()), "disabled jobs have no next run");
    let cases = [
        json!({}),
        json!({"includeDisabled": true, "sortDir": "desc"}),
        json!({"enabled": "disabled"}),
        json!({"enabled": "all", "sortBy": "name"}),
        json!({"enabled": "all", "sortBy": "name", "sortDir": "desc"}),
        json!({"enabled": "all", "sortBy": "updatedAtMs", "sortDir": "desc"}),
        json!({"enabled": "all", "agentId": "ops"}),
        json!({"enabled": "all", "agentId": "main", "sortBy": "name"}),
        json!({"enabled": "all", "query": "NUMBER 1", "sortDir": "desc"}),
        json!({"scheduleKind": "cron", "sortBy": "name"}),
        json!({"enabled": "all", "lastRunStatus": "unknown"}),
        json!({"lastRunStatus": "ok"}),
    ];
    for params in cases {
        let mut want: Vec<&Value> = all
            .iter()
            .filter(|j| match params["enabled"].as_str() {
                Some("all") => true,
                Some("disabled") => j["enabled"] == false,
                _ => params["includeDisabled"] == true || j["enabled"] == true,
            })
            .filter(|j| params["agentId"].as_str().is_none_or(|a| j["agentId"].as_str().unwrap_or("main") == a))
            .filter(|j| params["scheduleKind"].as_str().is_none_or(|k| j["schedule"]["kind"] == k))
            // None of these jobs has run.
            .filter(|_| params["lastRunStatus"].as_str().is_none_or(|s| s == "unknown"))
            .filter(|j| {
                params["query"].as_str().is_none_or(|q| {
                    let q = q.to_lowercase();
                    [&j["id"], &j["name"], &j["description"]]
                        .iter()
                        .any(|f| f.as_str().unwrap().to_lowercase().contains(&q))
                })
            })
            .collect();
        let desc = params["sortDir"] == "desc";
        want.sort_by(|a, b| {
            let key = match params["sortBy"].as_str() {
                Some("name") => {
                    a["name"].as_str().unwrap().to_lowercase().cmp(&b["name"].as_str().unwrap().to_lowercase())
                }
                Some("updatedAtMs") => a["updatedAtMs"].as_i64().cmp(&b["updatedAtMs"].as_i64()),
                _ => next(a).cmp(&next(b)),
            };
            let order = key.then(a["id"].as_str().cmp(&b["id"].as_str()));
            let order = if desc { order.reverse() } else { order };
            // Jobs with no next run come last in either direction (OpenClaw's rule).
            let paused = |j: &Value| params["sortBy"].is_null() && next(j).is_none();
            paused(a).cmp(&paused(b)).then(order)
        });
        let want: Vec<&str> = want.iter().map(|j| j["id"].as_str().unwrap()).collect();
        for limit in [4, 200] {
            let (got, totals) = list_all(&mut c, params.clone(), limit).await;
            let got: Vec<&str> = got.iter().map(|j| j["id"].as_str().unwrap()).collect();
            assert_eq!(got, want, "{params} limit {limit}");
            assert!(totals.iter().all(|t| *t == want.len() as u64), "{params}: totals {totals:?}");
        }
        // Pincer's keyed pages (`cursor`) give the same order; filters are refused with them.
        let filtered = ["agentId", "query", "scheduleKind", "lastRunStatus"].iter().any(|k| !params[k].is_null());
        let (mut cursor, mut got, mut offset) = (json!(""), Vec::new(), 0u64);
        loop {
            let mut p = params.clone();
            (p["cursor"], p["limit"], p["offset"]) = (cursor, json!(3), json!(offset));
            if filtered {
                let res = c.request("cron.list", p).await.unwrap();
                assert!(error_of(&res).1.contains("cursor pages the whole listing"), "{res}");
                break;
            }
            let page = c.call("cron.list", p).await.unwrap();
            let ids = page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string());
            got.extend(ids);
            offset = got.len() as u64;
            assert_eq!(page["total"].as_u64(), Some(want.len() as u64));
            assert_eq!(page["hasMore"], page["nextCursor"].is_string(), "{page:#}");
            match page["nextCursor"].as_str() {
                Some(next) => {
                    assert_eq!(page["nextOffset"].as_u64(), Some(offset));
                    cursor = json!(next);
                }
                None => {
                    assert_eq!(got, want, "{params} by cursor");
                    break;
                }
            }
        }
    }
    // A cursor allows pages of up to 1000 and must be one the gateway gave out.
    let page = c.call("cron.list", json!({"cursor": "", "limit": 1000})).await.unwrap();
    assert_eq!((page["hasMore"].as_bool(), page["nextCursor"].clone()), (Some(false), Value::Null));
    let res = c.request("cron.list", json!({"cursor": "bm9wZQ", "limit": 5})).await.unwrap();
    assert!(error_of(&res).1.contains("cursor is not one this gateway gave out"), "{res}");
    // Past the end: an empty page that says so.
    let page = c.call("cron.list", json!({"offset": 500})).await.unwrap();
    assert_eq!((page["jobs"].as_array().unwrap().len(), page["hasMore"].as_bool()), (0, Some(false)));
    gw.stop().await;
}

/// `cron.add`s arriving together are checked one by one but committed together: many share one
/// commit, each caller hears back only once its job is durable, and every job is scheduled.
#[tokio::test]
async fn pipelined_adds_share_commits_and_each_is_durable_when_answered() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let n = 60;
    let before = gw.store().commits();
    for i in 0..n {
        let job = command_job(&format!("bulk {i}"), json!({"kind": "every", "everyMs": 60_000}), "true");
        c.send_text(json!({"type": "req", "id": format!("add-{i}"), "method": "cron.add", "params": job}).to_string())
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    while ids.len() < n {
        let frame = c.next_frame().await.unwrap();
        if frame["type"] != "res" {
            continue;
        }
        assert_eq!(frame["ok"], true, "{frame}");
        let id = frame["payload"]["id"].as_str().unwrap().to_string();
        // Answered means committed: a fresh read finds it.
        let stored = gw.store().read({
            let id = id.clone();
            move |rd| rd.get_job(&id)
        });
        assert!(stored.await.unwrap().is_some(), "{id} answered before it was stored");
        ids.push(id);
    }
    let commits = gw.store().commits() - before;
    assert!(commits < n as u64 / 2, "{commits} commits for {n} adds");
    let status = c.call("cron.status", json!({})).await.unwrap();
    assert_eq!(status["jobs"].as_u64(), Some(n as u64), "every job is scheduled: {status}");
    let page = c.call("cron.list", json!({"limit": 200})).await.unwrap();
    assert_eq!(page["total"].as_u64(), Some(n as u64));
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_is_rejected_naming_the_field_and_nothing_is_stored() {
    let gw = TestGateway::start_with("{channels: {discord: {token: 't'}, telegram: {botToken: 't'}}}").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let agent = json!({"kind": "agentTurn", "message": "m"});
    let rows: Vec<(Value, &str)> = vec![
        (
            json!({"schedule": {"kind": "cron", "expr": "61 * * * *"}, "payload": agent}),
            "schedule.expr: invalid cron expression",
        ),
        (
            json!({"schedule": {"kind": "cron", "expr": "0 7 * * *", "tz": "Mars/Base"}, "payload": agent}),
            "schedule.tz: unknown time zone",
        ),
        (
            json!({"schedule": {"kind": "every", "everyMs": 0}, "payload": agent}),
            "schedule.everyMs: must be at least 1",
        ),
        (json!({"schedule": {"kind": "at", "at": "tomorrowish"}, "payload": agent}), "schedule.at: cannot parse"),
        (
            json!({"schedule": {"kind": "every", "everyMs": 1000}, "payload": agent, "colour": "red"}),
            "unknown field `colour`",
        ),
        (json!({"schedule": {"kind": "every", "everyMs": 1000, "jitter": 1}, "payload": agent}), "jitter"),
        (
            json!({"schedule": {"kind": "every", "everyMs": 1000}, "payload": agent, "sessionTarget": "main"}),
            "sessionTarget: \"main\" runs system events only",
        ),
        (
            json!({"schedule": {"kind": "every", "everyMs": 1000}, "payload": {"kind": "systemEvent", "text": "t"}, "sessionTarget": "isolated"}),
            "payload.kind: systemEvent runs in the main session only",
        ),
        (
            json!({"schedule": {"kind": "every", "everyMs": 1000}, "payload": agent,
                   "delivery": {"mode": "announce", "channel": "discord", "to": "telegram:123"}}),
            "delivery.to: the \"telegram:\" prefix contradicts delivery.channel \"discord\"",
        ),
        (
            json!({"schedule": {"kind": "every", "everyMs": 1000}, "payload": {"kind": "script", "script": "x"}}),
            "payload.kind: \"script\" is not supported",
        ),
        (json!({"schedule": {"kind": "every", "everyMs": 1000}}), "payload.kind: required"),
        // Jobs that could never succeed: an agent or a channel account that does not exist.
        (
            json!({"schedule": {"kind": "every", "everyMs": 1000}, "payload": agent,
                   "delivery": {"mode": "announce", "channel": "discord", "to": "channel:1", "accountId": "work"}}),
            "delivery.accountId: unknown account \"work\"",
        ),
    ];
    for (params, expected) in rows {
        let res = c.request("cron.add", params.clone()).await.unwrap();
        let (code, message) = error_of(&res);
        assert_eq!(code, "INVALID_REQUEST", "{params}");
        assert!(message.starts_with("invalid cron.add params: "), "{message}");
        assert!(message.contains(expected), "{message} should contain {expected}");
    }
    let list = c.call("cron.list", json!({"includeDisabled": true})).await.unwrap();
    assert_eq!(list["total"], 0, "nothing was stored");
    let res = c.request("cron.list", json!({"limit": 500})).await.unwrap();
    assert!(error_of(&res).1.contains("limit must be 1..200"));
    let res = c.request("cron.runs", json!({"status": "weird"})).await.unwrap();
    assert!(error_of(&res).1.contains("status \"weird\""));
    gw.stop().await;
}

#[tokio::test]
async fn every_slot_fires_exactly_once_and_reads_are_pure() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = add(&mut c, command_job("tick", json!({"kind": "every", "everyMs": 60_000}), "echo ran")).await;
    let id = job["id"].as_str().unwrap();
    // Reading does not advance anything.
    for _ in 0..3 {
        assert_eq!(c.call("cron.get", json!({"id": id})).await.unwrap()["state"]["nextRunAtMs"], T0 + 60_000);
        c.call("cron.list", json!({})).await.unwrap();
        c.call("cron.status", json!({})).await.unwrap();
    }
    let mut runs = Vec::new();
    for i in 0..5 {
        runs = step_to_next(&gw, &mut c, id, i).await;
    }
    assert_eq!(slots(&runs), (1..=5).map(|k| T0 + k * 60_000).collect::<Vec<_>>());
    for r in &runs {
        assert_eq!(r["runId"], format!("cron:{id}:{}", r["slotMs"]));
        assert_eq!((r["status"].as_str(), r["completionStatus"].as_str()), (Some("ok"), Some("succeeded")));
        assert_eq!(r["summary"], "ran");
        assert_eq!(r["deliveryStatus"], "not-requested");
    }
    // Jumping the clock far ahead coalesces the passed slots into one run.
    gw.clock.set(T0 + 10 * 60_000 + 5_000);
    let runs = wait_runs(&mut c, id, 6).await;
    assert_eq!(runs.len(), 6);
    gw.stop().await;
}

#[tokio::test]
async fn dst_transitions_of_2026() {
    let mut gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    // New York, spring forward on 2026-03-08: the 02:30 daily job runs once, at 03:00 EDT.
    gw.restart_at(utc(2026, 3, 7, 12, 0)).await;
    let mut c2 = gw.client(&["operator.admin"]).await;
    let ny = add(
        &mut c2,
        command_job("ny", json!({"kind": "cron", "expr": "30 2 * * *", "tz": "America/New_York"}), "true"),
    )
    .await;
    let hourly = add(
        &mut c2,
        command_job(
            "hourly",
            json!({"kind": "cron", "expr": "0 * * * *", "tz": "America/New_York", "staggerMs": 0}),
            "true",
        ),
    )
    .await;
    let (ny, hourly) = (ny["id"].as_str().unwrap().to_string(), hourly["id"].as_str().unwrap().to_string());
    let mut ny_runs = Vec::new();
    for i in 0..3 {
        ny_runs = step_to_next(&gw, &mut c2, &ny, i).await;
    }
    let shown: Vec<String> = slots(&ny_runs).iter().map(|t| local(*t, "America/New_York")).collect();
    assert_eq!(shown, ["03-08 03:00 EDT", "03-09 02:30 EDT", "03-10 02:30 EDT"]);
    let hourly_runs = wait_runs(&mut c2, &hourly, 1).await;
    let on_the_day: Vec<String> = slots(&hourly_runs)
        .iter()
        .map(|t| local(*t, "America/New_York"))
        .filter(|s| s.starts_with("03-08 0"))
        .collect();
    assert!(!on_the_day.iter().any(|s| s.starts_with("03-08 02")), "no run in the missing hour: {on_the_day:?}");
    // Berlin, fall back on 2026-10-25: 02:30 happens twice and fires once, at the first (CEST).
    gw.restart_at(utc(2026, 10, 24, 12, 0)).await;
    let mut c3 = gw.client(&["operator.admin"]).await;
    let berlin = add(
        &mut c3,
        command_job("berlin", json!({"kind": "cron", "expr": "30 2 * * *", "tz": "Europe/Berlin"}), "true"),
    )
    .await;
    let berlin = berlin["id"].as_str().unwrap().to_string();
    let mut runs = Vec::new();
    for i in 0..2 {
        runs = step_to_next(&gw, &mut c3, &berlin, i).await;
    }
    let shown: Vec<String> = slots(&runs).iter().map(|t| local(*t, "Europe/Berlin")).collect();
    assert_eq!(shown, ["10-25 02:30 CEST", "10-26 02:30 CET"]);
    let _ = &mut c;
    gw.stop().await;
}

#[tokio::test]
async fn error_backoff_sequence_then_auto_disable_then_reset() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job =
        add(&mut c, command_job("flaky", json!({"kind": "every", "everyMs": 10_000}), "echo boom >&2; exit 3")).await;
    let id = job["id"].as_str().unwrap();
    let mut gaps = Vec::new();
    for i in 0..10 {
        let runs = step_to_next(&gw, &mut c, id, i).await;
        let last = runs.last().unwrap();
        assert_eq!(last["status"], "error");
        assert!(last["error"].as_str().unwrap().contains("exit code 3: boom"), "{last}");
        assert_eq!(last["errorReason"], "exit_code");
        let job = wait_job(&mut c, id, |j| j["state"]["consecutiveErrors"] == i + 1).await;
        if let Some(next) = job["state"]["nextRunAtMs"].as_i64() {
            gaps.push((next - last["slotMs"].as_i64().unwrap()) / 1000);
        }
    }
    assert_eq!(gaps, [30, 60, 300, 900, 3600, 3600, 3600, 3600, 3600], "seconds between an error and the next try");
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(job["enabled"], false);
    assert_eq!(job["state"]["autoDisabled"]["reason"], "consecutive-failures");
    assert_eq!(job["state"]["autoDisabled"]["consecutiveErrors"], 10);
    // Fix the command and enable: the streak and the auto-disable clear, the next run succeeds.
    let fixed = c
        .call(
            "cron.update",
            json!({"id": id, "patch": {"enabled": true, "payload": {"argv": ["sh", "-c", "echo fine"]}}}),
        )
        .await
        .unwrap();
    assert!(fixed["state"].get("autoDisabled").is_none());
    let runs = step_to_next(&gw, &mut c, id, 10).await;
    assert_eq!(runs.last().unwrap()["status"], "ok");
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert!(job["state"].get("consecutiveErrors").is_none(), "reset on success: {job}");
    gw.stop().await;
}

#[tokio::test]
async fn missed_slots_coalesce_into_one_catch_up_after_three_days_down() {
    let mut gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = add(
        &mut c,
        command_job("hourly", json!({"kind": "cron", "expr": "0 * * * *", "tz": "UTC", "staggerMs": 0}), "true"),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    let down_until = T0 + 3 * 86_400_000 + 10 * 60_000;
    gw.restart_at(down_until).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["trigger"], "catch-up");
    assert_eq!(runs[0]["slotMs"], T0 + 3 * 86_400_000, "the latest missed slot");
    let job = wait_job(&mut c, &id, |j| j["state"]["lastRunStatus"] == "ok").await;
    assert_eq!(job["state"]["nextRunAtMs"], T0 + 3 * 86_400_000 + 3_600_000);
    // No second catch-up for the same downtime.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let all = c.call("cron.runs", json!({"id": id})).await.unwrap();
    assert_eq!(all["total"], 1);
    gw.stop().await;
}

#[tokio::test]
async fn skip_missed_jobs_skips_recurring_catch_up() {
    let mut gw = TestGateway::start_with("{cron: {skipMissedJobs: true}}").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = add(
        &mut c,
        command_job("hourly", json!({"kind": "cron", "expr": "0 * * * *", "tz": "UTC", "staggerMs": 0}), "true"),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    gw.restart_at(T0 + 86_400_000 + 60_000).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(job["state"]["nextRunAtMs"], T0 + 86_400_000 + 3_600_000);
    assert_eq!(c.call("cron.runs", json!({"id": id})).await.unwrap()["total"], 0);
    gw.stop().await;
}

#[tokio::test]
async fn catch_up_starts_a_bounded_number_at_once_and_spreads_the_rest() {
    let mut gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let job =
            add(&mut c, command_job(&format!("j{i}"), json!({"kind": "every", "everyMs": 3_600_000}), "true")).await;
        ids.push(job["id"].as_str().unwrap().to_string());
    }
    let back = T0 + 2 * 3_600_000 + 1;
    gw.restart_at(back).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut immediate = 0;
    let mut later = Vec::new();
    for id in &ids {
        let runs = c.call("cron.runs", json!({"id": id})).await.unwrap();
        let job = c.call("cron.get", json!({"id": id})).await.unwrap();
        let next = job["state"]["nextRunAtMs"].as_i64().unwrap();
        if runs["total"] == 1 || job["state"]["runningAtMs"].is_i64() || next > back + 3_000_000 {
            immediate += 1;
        } else {
            later.push(next - back);
        }
    }
    later.sort();
    assert_eq!(immediate, 5, "five start at once");
    assert_eq!(later, [5_000, 10_000, 15_000], "the rest are spread 5 s apart");
    gw.stop().await;
}

#[tokio::test]
async fn a_run_interrupted_by_a_crash_is_recorded_and_its_slot_never_reruns() {
    let mut gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = add(&mut c, command_job("slow", json!({"kind": "every", "everyMs": 60_000}), "sleep 30")).await;
    let id = job["id"].as_str().unwrap().to_string();
    gw.clock.set(T0 + 60_000);
    wait_job(&mut c, &id, |j| j["state"]["runningAtMs"].is_i64()).await;
    // The process dies with the run in flight: its reservation stays in the store.
    gw.restart_at(T0 + 60_500).await;
    let mut c = gw.client(&["operator.admin"]).await;
    let runs = wait_runs(&mut c, &id, 1).await;
    assert_eq!(runs[0]["runId"], format!("cron:{id}:{}", T0 + 60_000));
    assert_eq!((runs[0]["status"].as_str(), runs[0]["errorReason"].as_str()), (Some("error"), Some("interrupted")));
    assert!(runs[0]["error"].as_str().unwrap().contains("the command was killed with it and may have partly run"));
    assert_eq!(runs[0]["completionStatus"], "failed");
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(job["state"]["nextRunAtMs"], T0 + 120_000, "continues after the interrupted slot");
    // A cheap command now, so the next slot completes.
    c.call("cron.update", json!({"id": id, "patch": {"payload": {"argv": ["true"]}}})).await.unwrap();
    gw.clock.set(T0 + 120_000);
    let runs = wait_runs(&mut c, &id, 2).await;
    assert_eq!(slots(&runs), [T0 + 60_000, T0 + 120_000], "each slot exactly once");
    gw.stop().await;
}

#[tokio::test]
async fn time_limit_kills_the_process_group() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let shell = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let mut params = command_job("hang", json!({"kind": "every", "everyMs": 3_600_000}), &shell);
    params["payload"]["timeoutSeconds"] = json!(5);
    let job = add(&mut c, params).await;
    let id = job["id"].as_str().unwrap();
    gw.clock.set(T0 + 3_600_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the command never started");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    gw.clock.advance(5_000);
    let runs = wait_runs(&mut c, id, 1).await;
    assert_eq!(runs[0]["errorReason"], "timeout");
    assert!(runs[0]["error"].as_str().unwrap().contains("timed out after 5s"), "{}", runs[0]);
    // The grandchild `sleep 300` went with its process group.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
    {
        assert!(std::time::Instant::now() < deadline, "process {pid} survived the timeout");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn one_shots_delete_on_success_and_stay_disabled_on_failure() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let at = "2026-03-01T00:10:00.000Z";
    let ok = add(&mut c, command_job("once-ok", json!({"kind": "at", "at": at}), "echo done")).await;
    let bad = add(&mut c, command_job("once-bad", json!({"kind": "at", "at": at}), "exit 1")).await;
    assert_eq!(ok["deleteAfterRun"], true);
    gw.clock.set(T0 + 600_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let res = c.request("cron.get", json!({"id": ok["id"]})).await.unwrap();
        if res["error"]["details"]["code"] == "CRON_JOB_NOT_FOUND" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "succeeded one-shot was not deleted");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let bad_id = bad["id"].as_str().unwrap();
    let job = wait_job(&mut c, bad_id, |j| j["state"]["lastRunStatus"] == "error").await;
    assert_eq!(job["enabled"], false, "a failed one-shot is kept, disabled, for inspection");
    assert!(job["state"].get("nextRunAtMs").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn manual_runs_force_due_and_never_overlap() {
    let gw = TestGateway::start().await;
    let mut c = gw.client(&["operator.admin"]).await;
    let mut params = command_job("manual", json!({"kind": "every", "everyMs": 3_600_000}), "sleep 0.3; echo x");
    params["enabled"] = json!(false);
    let job = add(&mut c, params).await;
    let id = job["id"].as_str().unwrap();
    let res = c.call("cron.run", json!({"id": id, "mode": "due"})).await.unwrap();
    assert_eq!(res["ran"], false);
    assert_eq!(res["reason"], "not-due");
    let res = c.call("cron.run", json!({"id": id})).await.unwrap();
    assert_eq!(res["enqueued"], true);
    assert!(res["runId"].as_str().unwrap().starts_with(&format!("manual:{id}:")));
    let again = c.call("cron.run", json!({"id": id})).await.unwrap();
    assert_eq!((again["ran"].as_bool(), again["reason"].as_str()), (Some(false), Some("already-running")));
    let runs = wait_runs(&mut c, id, 1).await;
    assert_eq!(runs[0]["runId"], res["runId"]);
    let job = c.call("cron.get", json!({"id": id})).await.unwrap();
    assert_eq!(job["enabled"], false, "a forced run does not enable the job");
    let res = c.request("cron.run", json!({"id": "nope"})).await.unwrap();
    assert_eq!(res["error"]["details"]["code"], "CRON_JOB_NOT_FOUND");
    gw.stop().await;
}

#[tokio::test]
async fn cron_events_reach_readers() {
    let gw = TestGateway::start().await;
    let mut admin = gw.client(&["operator.admin"]).await;
    let mut reader = gw.client(&["operator.read"]).await;
    let job = add(&mut admin, command_job("ev", json!({"kind": "every", "everyMs": 60_000}), "echo e")).await;
    let added = reader.next_event("cron").await.unwrap();
    assert_eq!(
        (added["payload"]["action"].as_str(), added["payload"]["jobId"].clone()),
        (Some("added"), job["id"].clone())
    );
    gw.clock.set(T0 + 60_000);
    let started = reader.next_event("cron").await.unwrap();
    assert_eq!(started["payload"]["action"], "started");
    let finished = reader.next_event("cron").await.unwrap();
    assert_eq!(finished["payload"]["action"], "finished");
    assert_eq!(finished["payload"]["summary"], "e");
    assert!(finished["seq"].as_u64().unwrap() > added["seq"].as_u64().unwrap());
    gw.stop().await;
}

#[tokio::test]
async fn ten_thousand_jobs_each_fire_once() {
    let gw = TestGateway::start_with("{cron: {maxConcurrentRuns: 64}}").await;
    let mut c = gw.client(&["operator.admin"]).await;
    // Seed the store directly (one transaction) instead of 10,000 RPCs.
    let template = add(&mut c, command_job("template", json!({"kind": "every", "everyMs": 86_400_000}), "true")).await;
    c.call("cron.remove", json!({"id": template["id"]})).await.unwrap();
    let n = 10_000;
    let mut def: Value = template.clone();
    for k in ["configRevision", "nextRunAtMs", "deliveryPreview", "state"] {
        def.as_object_mut().unwrap().remove(k);
    }
    // An agent turn with no agent runner fails fast without spawning anything: this measures
    // the scheduler, not process creation.
    def["payload"] = json!({"kind": "agentTurn", "message": "m"});
    def["delivery"] = json!({"mode": "none"});
    let rows: Vec<pincer_store::JobRow> = (0..n)
        .map(|i| {
            let mut d = def.clone();
            d["id"] = json!(format!("job-{i:05}"));
            d["name"] = json!(format!("job {i}"));
            d["schedule"]["anchorMs"] = json!(T0 - 86_400_000 + 60_000);
            pincer_store::JobRow {
                id: format!("job-{i:05}"),
                name: format!("job {i}"),
                enabled: true,
                job_json: d.to_string(),
                state_json: json!({"nextRunAtMs": T0 + 60_000}).to_string(),
                next_run_at_ms: Some(T0 + 60_000),
                created_at_ms: T0,
                updated_at_ms: T0,
            }
        })
        .collect();
    gw.store()
        .write(move |tx| {
            for r in &rows {
                tx.insert_job(r)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let mut gw = gw;
    // Start before the slot (a missed slot would be a bounded catch-up instead), then let it come.
    gw.restart_at(T0 + 30_000).await;
    let store = gw.store().clone();
    let started = std::time::Instant::now();
    gw.clock.set(T0 + 60_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (rows, total) = store
            .read(|rd| {
                rd.list_runs(&pincer_store::RunFilter {
                    limit: 1,
                    statuses: vec![pincer_protocol::state::ExecStatus::Error],
                    ..Default::default()
                })
            })
            .await
            .unwrap();
        let _ = rows;
        if total == n {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {total} of {n} runs after 120 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    eprintln!("10,000 due jobs ran in {:?}", started.elapsed());
    // Exactly one run per job, for the right slot.
    let (runs, total) =
        store.read(|rd| rd.list_runs(&pincer_store::RunFilter { limit: 20_000, ..Default::default() })).await.unwrap();
    assert_eq!(total, n);
    let mut ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n as usize);
    assert!(runs.iter().all(|r| r.slot_ms == Some(T0 + 60_000)));
    gw.stop().await;
}

#[tokio::test]
async fn run_history_is_pruned_by_count_and_age() {
    let gw = TestGateway::start_with("{cron: {runRetention: {maxAge: '1d', maxPerJob: 3}}}").await;
    let mut c = gw.client(&["operator.admin"]).await;
    let job = add(&mut c, command_job("many", json!({"kind": "every", "everyMs": 86_400_000 * 7}), "true")).await;
    let id = job["id"].as_str().unwrap();
    for i in 0..5 {
        c.call("cron.run", json!({"id": id})).await.unwrap();
        wait_runs(&mut c, id, i + 1).await;
        gw.clock.advance(1_000);
    }
    // The hourly sweep runs on the scheduler's watchdog.
    gw.clock.advance(2 * 3_600_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let total = c.call("cron.runs", json!({"id": id})).await.unwrap()["total"].as_u64().unwrap();
        if total == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{total} runs kept");
        gw.clock.advance(61_000);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A day later, age removes the rest.
    gw.clock.advance(2 * 86_400_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c.call("cron.runs", json!({"id": id})).await.unwrap()["total"] != 0 {
        assert!(std::time::Instant::now() < deadline, "old runs kept");
        gw.clock.advance(3_600_001);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    gw.stop().await;
}
