//! Supervision of the gateway's long-lived tasks (the scheduler, the outbox loop, the heartbeat,
//! the retention sweep, …): a task that panics or returns an error is logged, counted
//! (`pincer_task_restarts_total{task}`) and started again after a backoff on the injected clock;
//! one that keeps failing within a minute of each start is given up and reported `failed`. Each
//! task's state is queryable ([`Supervisor::tasks`]), so `health`, `status`, `doctor` and
//! `/readyz` say when something in the background is down instead of staying green.
//!
//! A task is a factory of futures: each start calls it again, and the future it returns must
//! rebuild whatever it keeps in memory from durable state — the memory of the incarnation that
//! failed may be what broke. A future that returns `Ok(())` has stopped on purpose (shutdown) and
//! is not restarted.
//!
//! **Architecture Invariant:** every task that lives as long as the gateway is started through a
//! [`Supervisor`]; only per-request, per-connection and per-run tasks are spawned bare (they end
//! with their work, and a panic there loses only that work).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::{Metrics, SharedClock};

/// A task's state and report are wire types: `health`, `status` and `/readyz` send them as they are.
pub use pincer_protocol::schema::system::{TaskReport, TaskState};

/// What a supervised task returns when it fails; any error converts into it with `?`.
pub type TaskError = Box<dyn std::error::Error + Send + Sync>;

/// `Ok(())`: stopped on purpose, not restarted. `Err`: restarted after a backoff.
pub type TaskResult = Result<(), TaskError>;

/// Waits before the n-th restart in a row: 1 s, 2 s, 5 s, 10 s, 30 s, then every 60 s.
pub const RESTART_BACKOFF_MS: [i64; 6] = [1_000, 2_000, 5_000, 10_000, 30_000, 60_000];
/// A task that ran this long before failing was healthy: its backoff starts over.
pub const HEALTHY_AFTER_MS: i64 = 60_000;
/// Failures in a row (each within [`HEALTHY_AFTER_MS`] of its start) after which a task is given up.
pub const GIVE_UP_AFTER: u32 = 10;

/// A handle to one supervised task's state; cheap to clone.
#[derive(Clone)]
pub struct Task {
    report: watch::Receiver<TaskReport>,
}

impl Task {
    pub fn report(&self) -> TaskReport {
        self.report.borrow().clone()
    }

    pub fn is_running(&self) -> bool {
        self.report.borrow().state == TaskState::Running
    }

    /// Waits until the task has stopped for good (stopped or failed).
    pub async fn finished(&self) {
        let mut rx = self.report.clone();
        let _ = rx.wait_for(|r| matches!(r.state, TaskState::Stopped | TaskState::Failed)).await;
    }
}

/// Owns the long-lived tasks; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    clock: SharedClock,
    metrics: Arc<Metrics>,
    tasks: Mutex<Vec<Task>>,
    stop: watch::Sender<bool>,
}

impl Supervisor {
    pub fn new(clock: SharedClock, metrics: Arc<Metrics>) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner { clock, metrics, tasks: Mutex::default(), stop: watch::Sender::new(false) }),
        }
    }

    /// Starts `name`: runs `start()`, and after each panic or error runs it again after the
    /// backoff. Call it inside a Tokio runtime.
    pub fn spawn<F, Fut>(&self, name: &'static str, critical: bool, mut start: F) -> Task
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let clock = self.inner.clock.clone();
        let metrics = self.inner.metrics.clone();
        let now = clock.now_ms();
        let (tx, rx) = watch::channel(TaskReport {
            name: name.to_string(),
            critical,
            state: TaskState::Running,
            since_ms: now,
            restarts: 0,
            last_error: None,
            last_error_at_ms: None,
            restart_at_ms: None,
        });
        let task = Task { report: rx };
        {
            // A task started again under its name (a listener after a reload) replaces the
            // incarnation that ended, so `status` lists each task once.
            let mut tasks = self.inner.tasks.lock().expect("tasks lock");
            tasks.retain(|t| {
                let r = t.report.borrow();
                !(r.name == name && matches!(r.state, TaskState::Stopped | TaskState::Failed))
            });
            tasks.push(task.clone());
        }
        let mut stop = self.inner.stop.subscribe();
        let set_up = move |up: bool| {
            metrics.set(&crate::metrics::TASK_UP, &[("task", name)], up as u8 as f64);
        };
        let metrics = self.inner.metrics.clone();
        tokio::spawn(async move {
            let mut in_a_row = 0u32;
            // The state the task ends in, and its error if it failed for good.
            let (end, error) = loop {
                let started = clock.now_ms();
                tx.send_modify(|r| {
                    r.state = TaskState::Running;
                    r.since_ms = started;
                    r.restart_at_ms = None;
                });
                set_up(true);
                // A task of its own, so a panic ends only this incarnation.
                let error = match tokio::spawn(start()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("returned an error: {e}")),
                    Err(e) if e.is_panic() => Some(format!("panicked: {}", panic_message(e.into_panic()))),
                    // Cancelled: the runtime is shutting down.
                    Err(_) => None,
                };
                set_up(false);
                let now = clock.now_ms();
                let Some(error) = error.filter(|_| !*stop.borrow()) else { break (TaskState::Stopped, None) };
                in_a_row = if now - started >= HEALTHY_AFTER_MS { 1 } else { in_a_row + 1 };
                if in_a_row >= GIVE_UP_AFTER {
                    tracing::error!(
                        task = name,
                        error = %error,
                        "{name} failed {in_a_row} times in a row; it is not started again until the gateway restarts"
                    );
                    break (TaskState::Failed, Some(error));
                }
                let wait = RESTART_BACKOFF_MS[(in_a_row as usize - 1).min(RESTART_BACKOFF_MS.len() - 1)];
                metrics.inc(&crate::metrics::TASK_RESTARTS_TOTAL, &[("task", name)]);
                tracing::error!(task = name, error = %error, restart_in_ms = wait, "{name} stopped unexpectedly; restarting it");
                tx.send_modify(|r| {
                    r.state = TaskState::Restarting;
                    r.since_ms = now;
                    r.restarts += 1;
                    r.last_error = Some(error);
                    r.last_error_at_ms = Some(now);
                    r.restart_at_ms = Some(now + wait);
                });
                tokio::select! {
                    _ = clock.sleep_until(now + wait) => {}
                    _ = stop.wait_for(|s| *s) => break (TaskState::Stopped, None),
                }
            };
            // What the task holds (a listener, a queue) is released before anyone hears it ended.
            drop(start);
            let now = clock.now_ms();
            tx.send_modify(|r| {
                r.state = end;
                r.since_ms = now;
                r.restart_at_ms = None;
                if let Some(error) = error {
                    r.last_error = Some(error);
                    r.last_error_at_ms = Some(now);
                }
            });
        });
        task
    }

    /// Every task, in the order they were started.
    pub fn tasks(&self) -> Vec<TaskReport> {
        self.inner.tasks.lock().expect("tasks lock").iter().map(Task::report).collect()
    }

    /// Tasks that are down (see [`TaskReport::is_down`]).
    pub fn down(&self) -> Vec<TaskReport> {
        self.tasks().into_iter().filter(TaskReport::is_down).collect()
    }

    /// No more restarts: the gateway is stopping. Running tasks stop through their own signals.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::{Clock, FakeClock};

    async fn wait_for(task: &Task, pred: impl Fn(&TaskReport) -> bool) -> TaskReport {
        let mut rx = task.report.clone();
        let r = tokio::time::timeout(std::time::Duration::from_secs(10), rx.wait_for(|r| pred(r))).await;
        r.expect("the task reached the state within 10 s").expect("task state").clone()
    }

    fn setup() -> (FakeClock, Arc<Metrics>, Supervisor) {
        let clock = FakeClock::new(1_000_000);
        let metrics = Arc::new(Metrics::default());
        let sup = Supervisor::new(clock.shared(), metrics.clone());
        (clock, metrics, sup)
    }

    #[tokio::test]
    async fn a_panicking_task_is_restarted_after_the_backoff_on_the_clock() {
        let (clock, metrics, sup) = setup();
        let starts = Arc::new(AtomicU32::new(0));
        let (release_tx, release) = watch::channel(false);
        let task = sup.spawn("worker", true, {
            let starts = starts.clone();
            move || {
                let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
                let mut release = release.clone();
                async move {
                    if n == 1 {
                        panic!("broken invariant");
                    }
                    let _ = release.wait_for(|r| *r).await;
                    Ok(())
                }
            }
        });
        let r = wait_for(&task, |r| r.state == TaskState::Restarting).await;
        assert_eq!(r.restarts, 1);
        assert_eq!(r.last_error.as_deref(), Some("panicked: broken invariant"));
        assert_eq!(r.restart_at_ms, Some(1_000_000 + RESTART_BACKOFF_MS[0]));
        assert_eq!(sup.down().len(), 1, "a critical task that is not running is down");
        assert!(metrics.render().contains("pincer_task_restarts_total{task=\"worker\"} 1"));
        assert!(metrics.render().contains("pincer_task_up{task=\"worker\"} 0"));
        // Not before the backoff has passed on the clock.
        clock.advance(RESTART_BACKOFF_MS[0] - 1);
        tokio::task::yield_now().await;
        assert_eq!(task.report().state, TaskState::Restarting);
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        clock.advance(1);
        let r = wait_for(&task, |r| r.state == TaskState::Running).await;
        assert_eq!((r.restarts, starts.load(Ordering::SeqCst)), (1, 2));
        assert!(sup.down().is_empty());
        // Ok(()) is a stop on purpose: not restarted.
        release_tx.send_replace(true);
        wait_for(&task, |r| r.state == TaskState::Stopped).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn errors_back_off_longer_each_time_and_a_crash_loop_is_given_up() {
        let (clock, _metrics, sup) = setup();
        let starts = Arc::new(AtomicU32::new(0));
        let task = sup.spawn("looper", false, {
            let starts = starts.clone();
            move || {
                starts.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), TaskError>("the store refused".into()) }
            }
        });
        let mut waits = Vec::new();
        for n in 1..GIVE_UP_AFTER {
            let r = wait_for(&task, |r| r.state == TaskState::Restarting && r.restarts == n).await;
            assert_eq!(r.last_error.as_deref(), Some("returned an error: the store refused"));
            let wait = r.restart_at_ms.unwrap() - clock.now_ms();
            waits.push(wait);
            clock.advance(wait);
        }
        assert_eq!(waits, [1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 60_000, 60_000, 60_000]);
        let r = wait_for(&task, |r| r.state == TaskState::Failed).await;
        assert_eq!((r.restarts, starts.load(Ordering::SeqCst)), (GIVE_UP_AFTER - 1, GIVE_UP_AFTER));
        assert!(r.is_down(), "a failed task is down even when it is not critical");
        assert!(r.describe().starts_with("failed after 9 restarts; last error: returned an error"));
        task.finished().await;
    }

    #[tokio::test]
    async fn a_task_that_ran_healthy_for_a_while_starts_its_backoff_over() {
        let (clock, _metrics, sup) = setup();
        let starts = Arc::new(AtomicU32::new(0));
        let (fail_tx, fail) = watch::channel(0u32);
        let task = sup.spawn("steady", true, {
            let starts = starts.clone();
            move || {
                let n = starts.fetch_add(1, Ordering::SeqCst) + 1;
                let mut fail = fail.clone();
                async move {
                    let _ = fail.wait_for(|f| *f >= n).await;
                    Err::<(), TaskError>(format!("failure {n}").into())
                }
            }
        });
        fail_tx.send_replace(1);
        let r = wait_for(&task, |r| r.restarts == 1).await;
        clock.advance(r.restart_at_ms.unwrap() - clock.now_ms());
        wait_for(&task, |r| r.state == TaskState::Running).await;
        fail_tx.send_replace(2);
        let r = wait_for(&task, |r| r.restarts == 2).await;
        assert_eq!(r.restart_at_ms.unwrap() - clock.now_ms(), RESTART_BACKOFF_MS[1], "second failure in a row");
        clock.advance(RESTART_BACKOFF_MS[1]);
        wait_for(&task, |r| r.state == TaskState::Running).await;
        clock.advance(HEALTHY_AFTER_MS);
        fail_tx.send_replace(3);
        let r = wait_for(&task, |r| r.restarts == 3).await;
        assert_eq!(r.restart_at_ms.unwrap() - clock.now_ms(), RESTART_BACKOFF_MS[0], "healthy for a minute: over");
    }

    #[tokio::test]
    async fn stopping_ends_a_task_waiting_to_restart_and_errors_while_stopping_are_not_restarted() {
        let (_clock, _metrics, sup) = setup();
        let waiting = sup.spawn("waiting", true, || async { Err::<(), TaskError>("boom".into()) });
        wait_for(&waiting, |r| r.state == TaskState::Restarting).await;
        let (go_tx, go) = watch::channel(false);
        let stopping = sup.spawn("stopping", false, move || {
            let mut go = go.clone();
            async move {
                let _ = go.wait_for(|g| *g).await;
                Err::<(), TaskError>("failed while stopping".into())
            }
        });
        sup.stop();
        wait_for(&waiting, |r| r.state == TaskState::Stopped).await;
        go_tx.send_replace(true);
        let r = wait_for(&stopping, |r| r.state == TaskState::Stopped).await;
        assert_eq!(r.restarts, 0);
        let names: Vec<_> = sup.tasks().iter().map(|t| (t.name.clone(), t.state)).collect();
        assert_eq!(names, [("waiting".to_string(), TaskState::Stopped), ("stopping".to_string(), TaskState::Stopped)]);
    }
}
