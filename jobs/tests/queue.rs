//! The Redis queue protocol against the real Redis (127.0.0.1:6379 or VOXFLEET_TEST_REDIS_URL),
//! each test under a fresh key prefix. `queue_cluster.rs` runs these same tests on a Redis
//! Cluster: there this file is a module, and `crate::redis_url` is the cluster's. Leases, retry backoff and reaping run on a manual
//! [`Clock`] that the tests move forward: no test waits for them to pass. Only Redis's own
//! expiry of finished jobs is waited for.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use voxfleet_jobs::queue::{Claim, Outcome};
use voxfleet_jobs::{
    CancelOutcome, ClaimedJob, Clock, EnqueueRequest, ErrorClass, JobId, JobKind, JobStatus, Keys,
    Priority, QueueClient, QueueName, QueueOptions, RetrySettings,
};
use voxfleet_testkit::RedisKeys;

/// The Redis these tests run on, when this file is the test crate itself.
#[allow(dead_code)]
fn redis_url() -> String {
    voxfleet_testkit::redis_url()
}

/// A client under a fresh prefix; the keys are deleted when the test ends.
struct Fixture {
    q: QueueClient,
    _keys: RedisKeys,
}

impl Fixture {
    fn new(opts: QueueOptions) -> Self {
        let keys = RedisKeys::on(crate::redis_url(), "vftest");
        let q = QueueClient::new(&keys.url, Keys::new(&keys.prefix), opts).unwrap();
        Self { q, _keys: keys }
    }
}

fn cpu() -> QueueName {
    QueueName::cpu()
}

fn req(priority: Priority) -> EnqueueRequest {
    EnqueueRequest {
        id: JobId::new(),
        kind: JobKind::Diagnostic,
        queue: cpu(),
        priority,
        input: json!({}),
        owner: None,
        idempotency_key: None,
        max_retries: None,
        created_at: chrono::Utc::now(),
        version: 0,
    }
}

async fn claim(q: &QueueClient, worker: &str) -> Option<ClaimedJob> {
    match q.claim(&cpu(), worker).await.unwrap() {
        Claim::Job(j) => Some(*j),
        Claim::Empty { .. } => None,
    }
}

fn err(class: ErrorClass) -> Outcome {
    Outcome::Error {
        class,
        code: "boom".into(),
        message: "it broke".into(),
    }
}

/// The default lease and backoff, on a manual clock.
fn fast() -> QueueOptions {
    QueueOptions {
        clock: Clock::manual(),
        ..Default::default()
    }
}

/// Moves the fixture's manual clock forward.
fn advance(q: &QueueClient, d: Duration) {
    q.options().clock.advance(d);
}

#[tokio::test]
async fn higher_priority_first_and_fifo_within_a_priority() {
    let f = Fixture::new(QueueOptions::default());
    let low = req(Priority::Low);
    let n1 = req(Priority::Normal);
    let n2 = req(Priority::Normal);
    let high = req(Priority::High);
    f.q.enqueue_many(&[low.clone(), n1.clone(), n2.clone(), high.clone()])
        .await
        .unwrap();
    let mut order = vec![];
    while let Some(j) = claim(&f.q, "w").await {
        assert_eq!(j.job.status, JobStatus::Running);
        assert_eq!(j.job.attempts, 1);
        order.push(j.job.id);
    }
    assert_eq!(order, vec![high.id, n1.id, n2.id, low.id]);
}

#[tokio::test]
async fn concurrent_claims_never_hand_out_a_job_twice() {
    let f = Fixture::new(QueueOptions::default());
    let reqs: Vec<_> = (0..400).map(|_| req(Priority::Normal)).collect();
    f.q.enqueue_many(&reqs).await.unwrap();
    let q = Arc::new(f.q.clone());
    let mut tasks = vec![];
    for w in 0..8 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = vec![];
            while let Some(j) = claim(&q, &format!("w{w}")).await {
                got.push(j.job.id);
            }
            got
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 400, "every job claimed");
    assert_eq!(unique.len(), 400, "no job claimed twice");
}

#[tokio::test]
async fn success_is_recorded_and_only_the_lease_holder_may_finish() {
    let f = Fixture::new(QueueOptions::default());
    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let j = claim(&f.q, "w1").await.unwrap();
    let res =
        f.q.finish(
            &j,
            "w2",
            &Outcome::Succeeded(json!({"ok": 1})),
            RetrySettings::default(),
        )
        .await
        .unwrap();
    assert_eq!(res, None, "another worker cannot finish it");
    let res =
        f.q.finish(
            &j,
            "w1",
            &Outcome::Succeeded(json!({"ok": 1})),
            RetrySettings::default(),
        )
        .await
        .unwrap();
    assert_eq!(res, Some(JobStatus::Succeeded));
    let s = f.q.get(&cpu(), &r.id).await.unwrap().unwrap();
    assert_eq!(s.status, JobStatus::Succeeded);
    assert_eq!(s.result, Some(json!({"ok": 1})));
    assert!(s.finished_at.is_some());
    let stats = f.q.stats(&cpu()).await.unwrap();
    assert_eq!((stats.queued, stats.running), (0, 0));
}

#[tokio::test]
async fn a_success_comes_back_exactly_as_its_hash_was_written() {
    // The worker writes its successes to PostgreSQL from `Finished::succeeded` instead of
    // reading the hashes back: each must equal what a read of the hash gives.
    let f = Fixture::new(QueueOptions::default());
    let mut with_extras = req(Priority::High);
    with_extras.owner = Some(uuid::Uuid::new_v4());
    with_extras.max_retries = Some(2);
    with_extras.input = json!({"text": "quote \" and newline \n"});
    let plain = req(Priority::Normal);
    let failing = req(Priority::Normal);
    let next = req(Priority::Low);
    f.q.enqueue_many(&[
        with_extras.clone(),
        plain.clone(),
        failing.clone(),
        next.clone(),
    ])
    .await
    .unwrap();
    let a = claim(&f.q, "w").await.unwrap();
    let b = claim(&f.q, "w").await.unwrap();
    let c = claim(&f.q, "w").await.unwrap();
    f.q.progress(&a, 3, 7).await.unwrap();
    let ok = Outcome::Succeeded(json!({"words": [1.5, "x"]}));
    let bad = err(ErrorClass::Permanent);
    let done =
        f.q.finish_many(
            &cpu(),
            "w",
            &[(&a, &ok), (&b, &ok), (&c, &bad)],
            RetrySettings::default(),
            1,
        )
        .await
        .unwrap();
    assert_eq!(
        done.statuses,
        vec![
            Some(JobStatus::Succeeded),
            Some(JobStatus::Succeeded),
            Some(JobStatus::Failed)
        ]
    );
    assert_eq!(done.succeeded.len(), 2, "the failure is left to the sweep");
    for s in &done.succeeded {
        let read = f.q.get(&cpu(), &s.id).await.unwrap().unwrap();
        assert_eq!(s, &read);
    }
    assert_eq!(done.succeeded[0].progress_done, Some(3));
    assert_eq!(done.succeeded[0].owner, with_extras.owner);
    assert_eq!(done.next.len(), 1);
    assert_eq!(done.next[0].job.id, next.id);
}

#[tokio::test]
async fn retryable_errors_retry_up_to_the_global_cap_then_fail() {
    let f = Fixture::new(fast());
    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let settings = RetrySettings {
        limit_retries: true,
        max_retries: 2,
    };
    let mut statuses = vec![];
    for _ in 0..10 {
        let Some(j) = wait_claim(&f.q).await else {
            break;
        };
        statuses.push(
            f.q.finish(&j, "w", &err(ErrorClass::Retryable), settings)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        statuses,
        vec![JobStatus::Retrying, JobStatus::Retrying, JobStatus::Failed]
    );
    let s = f.q.get(&cpu(), &r.id).await.unwrap().unwrap();
    assert_eq!((s.status, s.attempts), (JobStatus::Failed, 3));
    assert_eq!(s.error_code.as_deref(), Some("boom"));
}

/// Claims, moving the clock to the end of a retry's backoff when one is due later.
async fn wait_claim(q: &QueueClient) -> Option<ClaimedJob> {
    for _ in 0..3 {
        match q.claim(&cpu(), "w").await.unwrap() {
            Claim::Job(j) => return Some(*j),
            Claim::Empty { next_due_ms: None } => return None,
            Claim::Empty {
                next_due_ms: Some(due),
            } => {
                let wait = (due - q.now_ms()).max(0) as u64 + 1;
                advance(q, Duration::from_millis(wait));
            }
        }
    }
    None
}

#[tokio::test]
async fn a_job_cap_lowers_the_global_cap_and_permanent_errors_fail_at_once() {
    let f = Fixture::new(fast());
    let mut r = req(Priority::Normal);
    r.max_retries = Some(0);
    f.q.enqueue(&r).await.unwrap();
    let j = wait_claim(&f.q).await.unwrap();
    let s =
        f.q.finish(
            &j,
            "w",
            &err(ErrorClass::Retryable),
            RetrySettings::default(),
        )
        .await
        .unwrap();
    assert_eq!(s, Some(JobStatus::Failed), "max_retries 0: no retry");

    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let j = wait_claim(&f.q).await.unwrap();
    let s =
        f.q.finish(
            &j,
            "w",
            &err(ErrorClass::Permanent),
            RetrySettings::default(),
        )
        .await
        .unwrap();
    assert_eq!(s, Some(JobStatus::Failed), "permanent: no retry");
    assert_eq!(f.q.get(&cpu(), &r.id).await.unwrap().unwrap().attempts, 1);
}

#[tokio::test]
async fn with_the_limit_off_retryable_errors_keep_retrying() {
    let f = Fixture::new(fast());
    f.q.enqueue(&req(Priority::Normal)).await.unwrap();
    let off = RetrySettings {
        limit_retries: false,
        max_retries: 1,
    };
    for attempt in 1..=6 {
        let j = wait_claim(&f.q).await.unwrap();
        assert_eq!(j.job.attempts, attempt);
        let s =
            f.q.finish(&j, "w", &err(ErrorClass::Retryable), off)
                .await
                .unwrap();
        assert_eq!(s, Some(JobStatus::Retrying));
    }
}

#[tokio::test]
async fn expired_leases_are_reaped_as_worker_lost_and_counted() {
    let f = Fixture::new(fast());
    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let settings = RetrySettings {
        limit_retries: true,
        max_retries: 1,
    };
    // attempt 1: the worker "dies" (never renews)
    let j = wait_claim(&f.q).await.unwrap();
    assert_eq!(j.job.attempts, 1);
    assert!(
        f.q.reap(&cpu(), settings).await.unwrap().is_empty(),
        "lease still valid"
    );
    // just before the lease ends: still held; just after: reaped
    advance(&f.q, Duration::from_secs(15) - Duration::from_millis(1));
    assert!(f.q.reap(&cpu(), settings).await.unwrap().is_empty());
    advance(&f.q, Duration::from_millis(2));
    let reaped = f.q.reap(&cpu(), settings).await.unwrap();
    assert_eq!(reaped, vec![(r.id, JobStatus::Retrying)]);
    let s = f.q.get(&cpu(), &r.id).await.unwrap().unwrap();
    assert_eq!(s.error_code.as_deref(), Some("worker_lost"));
    // the dead worker cannot finish it any more
    assert_eq!(
        f.q.finish(&j, "w", &Outcome::Succeeded(json!(1)), settings)
            .await
            .unwrap(),
        None
    );
    // attempt 2 dies too: cap reached
    let j2 = wait_claim(&f.q).await.unwrap();
    assert_eq!(j2.job.attempts, 2);
    advance(&f.q, Duration::from_secs(16));
    assert_eq!(
        f.q.reap(&cpu(), settings).await.unwrap(),
        vec![(r.id, JobStatus::Failed)]
    );
    assert!(wait_claim(&f.q).await.is_none());
}

#[tokio::test]
async fn renewal_keeps_a_lease_and_reports_cancel_requests() {
    let f = Fixture::new(fast());
    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let j = wait_claim(&f.q).await.unwrap();
    // four renewals 10 s apart: 40 s in all, well past one 15 s lease
    for _ in 0..4 {
        advance(&f.q, Duration::from_secs(10));
        let (lost, cancel) = f.q.renew(&cpu(), "w", &[r.id]).await.unwrap();
        assert!(lost.is_empty() && cancel.is_empty());
        assert!(
            f.q.reap(&cpu(), RetrySettings::default())
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        f.q.cancel(&cpu(), &r.id).await.unwrap(),
        CancelOutcome::Cancelling
    );
    let (lost, cancel) = f.q.renew(&cpu(), "w", &[r.id]).await.unwrap();
    assert_eq!((lost, cancel), (vec![], vec![r.id]));
    let s =
        f.q.finish(&j, "w", &Outcome::Cancelled, RetrySettings::default())
            .await
            .unwrap();
    assert_eq!(s, Some(JobStatus::Cancelled));
    let (lost, _) = f.q.renew(&cpu(), "other", &[r.id]).await.unwrap();
    assert_eq!(lost, vec![r.id]);
}

#[tokio::test]
async fn cancelling_a_queued_job_removes_it() {
    let f = Fixture::new(QueueOptions::default());
    let a = req(Priority::Normal);
    let b = req(Priority::Normal);
    f.q.enqueue_many(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(
        f.q.cancel(&cpu(), &a.id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(f.q.stats(&cpu()).await.unwrap().queued, 1);
    assert_eq!(claim(&f.q, "w").await.unwrap().job.id, b.id);
    assert!(claim(&f.q, "w").await.is_none());
    assert_eq!(
        f.q.cancel(&cpu(), &a.id).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobStatus::Cancelled)
    );
    assert_eq!(
        f.q.cancel(&cpu(), &JobId::new()).await.unwrap(),
        CancelOutcome::Missing
    );
}

#[tokio::test]
async fn requeue_lost_queues_only_jobs_redis_has_no_record_of() {
    let f = Fixture::new(QueueOptions::default());
    // `known` is in Redis; `lost` stands for a job PostgreSQL holds that Redis lost
    let (known, lost) = (req(Priority::Normal), req(Priority::High));
    f.q.enqueue(&known).await.unwrap();
    let again =
        f.q.requeue_lost(&[known.clone(), lost.clone()])
            .await
            .unwrap();
    assert_eq!(again, vec![lost.id]);
    let j = f.q.get(&cpu(), &lost.id).await.unwrap().expect("its hash");
    assert_eq!((j.status, j.priority), (JobStatus::Queued, Priority::High));
    assert_eq!(f.q.stats(&cpu()).await.unwrap().queued, 2);
    // each runs once: a second sweep, with one of them running, queues nothing
    let first = claim(&f.q, "w").await.unwrap();
    assert_eq!(first.job.id, lost.id);
    assert!(
        f.q.requeue_lost(&[known.clone(), lost.clone()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(claim(&f.q, "w").await.unwrap().job.id, known.id);
    assert!(claim(&f.q, "w").await.is_none());
    assert!(f.q.requeue_lost(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn progress_is_written_only_while_the_worker_holds_the_job() {
    let f = Fixture::new(fast());
    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let first = claim(&f.q, "a").await.unwrap();
    f.q.progress(&first, 1, 4).await.unwrap();
    let s = f.q.get(&cpu(), &r.id).await.unwrap().unwrap();
    assert_eq!((s.progress_done, s.progress_total), (Some(1), Some(4)));
    // reaped and claimed again by another worker: the first one's progress no longer lands
    advance(&f.q, Duration::from_secs(16));
    f.q.reap(&cpu(), RetrySettings::default()).await.unwrap();
    let second = wait_claim(&f.q).await.unwrap();
    f.q.progress(&first, 3, 4).await.unwrap();
    let s = f.q.get(&cpu(), &r.id).await.unwrap().unwrap();
    assert_eq!(s.progress_done, None, "{s:?}");
    f.q.progress(&second, 2, 4).await.unwrap();
    let s = f.q.get(&cpu(), &r.id).await.unwrap().unwrap();
    assert_eq!(s.progress_done, Some(2));
    // Redis forgot the job: progress must not bring back a hash that would hide it
    let key = f.q.keys().queue(&cpu()).job(&r.id);
    let mut c = f.q.connection();
    let _: () = c.del(&key).await.unwrap();
    f.q.progress(&second, 3, 4).await.unwrap();
    let exists: bool = c.exists(&key).await.unwrap();
    assert!(
        !exists,
        "a progress report recreated a forgotten job's hash"
    );
}

#[tokio::test]
async fn release_requeues_without_counting_an_attempt() {
    let f = Fixture::new(QueueOptions::default());
    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let j = claim(&f.q, "w").await.unwrap();
    let s =
        f.q.finish(&j, "w", &Outcome::Release, RetrySettings::default())
            .await
            .unwrap();
    assert_eq!(s, Some(JobStatus::Queued));
    let again = claim(&f.q, "w2").await.unwrap();
    assert_eq!((again.job.id, again.job.attempts), (r.id, 1));
}

#[tokio::test]
async fn finished_jobs_expire_from_redis_once_persisted() {
    let f = Fixture::new(QueueOptions {
        finished_ttl: Duration::from_secs(1),
        ..Default::default()
    });
    let r = req(Priority::Normal);
    f.q.enqueue(&r).await.unwrap();
    let j = claim(&f.q, "w").await.unwrap();
    f.q.finish(
        &j,
        "w",
        &Outcome::Succeeded(json!(null)),
        RetrySettings::default(),
    )
    .await
    .unwrap();
    let pending = f.q.awaiting_persist(&cpu(), None, 100).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, JobStatus::Succeeded);
    // a stale version is not acknowledged
    assert_eq!(
        f.q.mark_persisted(&cpu(), &[(r.id, pending[0].version - 1)])
            .await
            .unwrap(),
        0
    );
    let mut c = f.q.connection();
    let ttl: i64 = c.ttl(f.q.keys().queue(&cpu()).job(&r.id)).await.unwrap();
    assert_eq!(ttl, -1, "no TTL before PostgreSQL has it");
    assert_eq!(
        f.q.mark_persisted(&cpu(), &[(r.id, pending[0].version)])
            .await
            .unwrap(),
        1
    );
    assert!(
        f.q.awaiting_persist(&cpu(), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(f.q.get(&cpu(), &r.id).await.unwrap().is_none(), "expired");
}

/// The backlog case apalis-redis fails (Lua "too many results to unpack" past ~8,000 due
/// jobs): 100,000 queued jobs all claim and complete; claim touches O(1) entries per call.
#[tokio::test]
async fn a_backlog_of_100k_jobs_drains_completely() {
    let f = Fixture::new(QueueOptions::default());
    const N: usize = 100_000;
    for chunk in 0..N / 1000 {
        let reqs: Vec<_> = (0..1000)
            .map(|i| req(Priority::ALL[(chunk * 1000 + i) % 3]))
            .collect();
        f.q.enqueue_many(&reqs).await.unwrap();
    }
    assert_eq!(f.q.stats(&cpu()).await.unwrap().queued, N as u64);
    let q = Arc::new(f.q.clone());
    let mut tasks = vec![];
    for w in 0..16 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("w{w}");
            let mut n = 0usize;
            while let Some(j) = claim(&q, &name).await {
                let s = q
                    .finish(
                        &j,
                        &name,
                        &Outcome::Succeeded(json!(null)),
                        RetrySettings::default(),
                    )
                    .await
                    .unwrap();
                assert_eq!(s, Some(JobStatus::Succeeded));
                n += 1;
            }
            n
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap();
    }
    assert_eq!(done, N);
    let s = f.q.stats(&cpu()).await.unwrap();
    assert_eq!((s.queued, s.running, s.retrying), (0, 0, 0));
    assert_eq!(s.awaiting_persist, N as u64);
}

#[tokio::test]
async fn an_idle_waiter_wakes_when_a_job_is_pushed_to_any_of_its_queues() {
    let f = Fixture::new(QueueOptions::default());
    // several queues: on a cluster their wake lists lie in different hash slots
    let queues = [
        QueueName::gpu(),
        QueueName::try_from("batch".to_string()).unwrap(),
        cpu(),
    ];
    let mut waiter = f.q.waiter(&queues, Duration::from_secs(5)).unwrap();
    for pushed in [cpu(), QueueName::gpu()] {
        let q = f.q.clone();
        let mut job = req(Priority::Normal);
        job.queue = pushed.clone();
        let pusher = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            q.enqueue(&job).await.unwrap();
        });
        // blocks up to 5 s; returns true as soon as the push signals
        let woke = waiter.wait(Duration::from_secs(5)).await.unwrap();
        assert!(woke, "no wake-up for a job on {pushed}");
        pusher.await.unwrap();
        assert!(
            matches!(f.q.claim(&pushed, "w").await.unwrap(), Claim::Job(_)),
            "{pushed}"
        );
    }
    // nothing pushed: the wait ends at its timeout, without a signal
    assert!(!waiter.wait(Duration::from_millis(300)).await.unwrap());
}

#[tokio::test]
async fn a_batch_over_several_queues_is_queued_in_order_and_each_job_announced() {
    use futures::StreamExt;
    let f = Fixture::new(QueueOptions::default());
    let mut ps = f.q.pubsub().await.unwrap();
    ps.subscribe(f.q.keys().events()).await.unwrap();
    let mut events = ps.into_on_message();
    // more jobs than one script call takes, interleaved over two queues, some with an owner
    let owner = uuid::Uuid::new_v4();
    let reqs: Vec<EnqueueRequest> = (0..450)
        .map(|i| {
            let mut r = req(Priority::Normal);
            if i % 3 == 0 {
                r.queue = QueueName::gpu();
            }
            if i % 2 == 0 {
                r.owner = Some(owner);
            }
            r
        })
        .collect();
    f.q.enqueue_many(&reqs).await.unwrap();

    let mut announced = std::collections::HashMap::new();
    while announced.len() < reqs.len() {
        let msg = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event for every job within 10 s")
            .unwrap();
        let ev: voxfleet_jobs::JobEvent = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
        announced.insert(ev.id, ev);
    }
    for r in &reqs {
        let ev = &announced[&r.id];
        assert_eq!(
            (
                ev.event_type.as_str(),
                ev.status,
                ev.kind.as_str(),
                ev.attempts
            ),
            ("status", JobStatus::Queued, "diagnostic", 0)
        );
        assert_eq!((ev.queue.clone(), ev.owner), (r.queue.to_string(), r.owner));
    }
    for queue in [cpu(), QueueName::gpu()] {
        let want: Vec<JobId> = reqs
            .iter()
            .filter(|r| r.queue == queue)
            .map(|r| r.id)
            .collect();
        let mut got = vec![];
        while let Claim::Job(j) = f.q.claim(&queue, "w").await.unwrap() {
            assert_eq!(
                j.job.owner,
                reqs.iter().find(|r| r.id == j.job.id).unwrap().owner
            );
            got.push(j.job.id);
        }
        assert_eq!(got, want, "{queue}: every job, in submission order");
    }
}

#[tokio::test]
async fn every_status_change_is_announced_with_the_jobs_fields() {
    // The scripts write the status events by hand (not through cjson): each must parse and
    // carry exactly what the job's hash says at that moment.
    use futures::StreamExt;
    let f = Fixture::new(fast());
    let mut ps = f.q.pubsub().await.unwrap();
    ps.subscribe(f.q.keys().events()).await.unwrap();
    let mut events = ps.into_on_message();
    let mut next = async || -> voxfleet_jobs::JobEvent {
        let msg = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .unwrap();
        serde_json::from_slice(msg.get_payload_bytes()).unwrap()
    };
    // what the hash holds now, as an event of `event_type` sent at the clock's time
    let expect = async |id: &JobId, event_type: &str| -> voxfleet_jobs::JobEvent {
        let s = f.q.get(&cpu(), id).await.unwrap().unwrap();
        voxfleet_jobs::JobEvent {
            id: s.id,
            event_type: event_type.into(),
            status: s.status,
            kind: s.kind.as_str().into(),
            queue: s.queue.to_string(),
            attempts: s.attempts,
            progress_done: s.progress_done,
            progress_total: s.progress_total,
            error_code: s.error_code,
            owner: s.owner,
            started_at: s.started_at.map(|t| t.timestamp_millis()),
            at: f.q.now_ms(),
        }
    };
    let mut owned = req(Priority::Normal);
    owned.owner = Some(uuid::Uuid::new_v4());
    let plain = req(Priority::Normal);
    let queued = req(Priority::Low);
    f.q.enqueue_many(&[owned.clone(), plain.clone(), queued.clone()])
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(next().await.status, JobStatus::Queued);
    }

    // claimed, progress, succeeded (the progress stays in the success's event)
    advance(&f.q, Duration::from_millis(5));
    let j = claim(&f.q, "w").await.unwrap();
    assert_eq!(j.job.id, owned.id);
    let running = expect(&owned.id, "status").await;
    assert_eq!((running.status, running.attempts), (JobStatus::Running, 1));
    assert!(running.started_at.is_some() && running.owner.is_some());
    assert_eq!(next().await, running);
    f.q.progress(&j, 1, 4).await.unwrap();
    assert_eq!(next().await.event_type, "progress");
    advance(&f.q, Duration::from_millis(5));
    let ok = Outcome::Succeeded(json!({"ok": 1}));
    f.q.finish(&j, "w", &ok, RetrySettings::default())
        .await
        .unwrap();
    let done = expect(&owned.id, "status").await;
    assert_eq!(
        (done.status, done.progress_done, done.progress_total),
        (JobStatus::Succeeded, Some(1), Some(4))
    );
    assert_eq!(next().await, done);

    // a retryable error, then a permanent one: both carry the error code
    let fail = async |j: &ClaimedJob, class: ErrorClass| {
        let outcome = err(class);
        f.q.finish(j, "w", &outcome, RetrySettings::default())
            .await
            .unwrap()
    };
    let j = claim(&f.q, "w").await.unwrap();
    assert_eq!(next().await, expect(&plain.id, "status").await);
    fail(&j, ErrorClass::Retryable).await;
    let retrying = expect(&plain.id, "status").await;
    assert_eq!(
        (retrying.status, retrying.error_code.as_deref()),
        (JobStatus::Retrying, Some("boom"))
    );
    assert_eq!(next().await, retrying);
    advance(&f.q, Duration::from_secs(60));
    let j = claim(&f.q, "w").await.unwrap();
    let again = expect(&plain.id, "status").await;
    assert_eq!((again.status, again.attempts), (JobStatus::Running, 2));
    assert_eq!(next().await, again);
    fail(&j, ErrorClass::Permanent).await;
    let failed = expect(&plain.id, "status").await;
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(next().await, failed);

    // cancelled while queued
    f.q.cancel(&cpu(), &queued.id).await.unwrap();
    let cancelled = expect(&queued.id, "status").await;
    assert_eq!(
        (cancelled.status, cancelled.error_code.as_deref()),
        (JobStatus::Cancelled, Some("cancelled"))
    );
    assert_eq!(next().await, cancelled);
}
