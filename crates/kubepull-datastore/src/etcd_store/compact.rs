//! Compaction of etcd's history, as kube-apiserver does it.
//!
//! Port of `staging/src/k8s.io/apiserver/pkg/storage/etcd3/compact.go` (`compactor`, `compact`):
//! every interval (default 5 minutes, `--etcd-compaction-interval`), each API server tries a
//! compare-and-swap on the key `compact_rev_key` (at the root of etcd, outside `--etcd-prefix`):
//! "if its version is the compact time I last saw, put the revision I saw at the previous
//! interval". The winner compacts etcd to that revision; the others learn the new compact time
//! and try again an interval later, so API servers sharing an etcd cluster compact once per
//! interval between them, and when the winner dies another takes over. The first successful
//! round only records the revision ("we don't compact on bootstrap"), so what is kept is at least
//! one interval of history.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};

use super::{call, Context};
use crate::Result;

/// The key the compactors of all API servers coordinate through (`compactRevKey`).
pub const COMPACT_REV_KEY: &str = "compact_rev_key";
/// `storagebackend.DefaultCompactInterval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The compactor's memory between rounds: the compact time (the version of `compact_rev_key`) and
/// the revision seen at the last round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The version of `compact_rev_key` this compactor last saw (`compactTime`).
    pub time: i64,
    /// The store revision seen at the last round (`rev`).
    pub rev: i64,
}

/// Outcome of one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// Another API server won this interval (CAS failed); nothing compacted.
    Lost,
    /// This server won; nothing to compact yet (the first round).
    Bootstrap,
    /// This server compacted up to the revision.
    Compacted(i64),
    /// This server won the interval but etcd refused the compaction (upstream keeps the new
    /// compact time and revision all the same, and tries again next interval).
    Failed,
}

/// One round of `compact`: returns the new state and what happened. A failed CAS is no error.
pub(crate) async fn round(client: &Client, ctx: &Context, s: State) -> Result<(State, Round)> {
    let txn = Txn::new()
        .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, s.time)])
        // side effect: the key's version goes up by one
        .and_then([TxnOp::put(COMPACT_REV_KEY, s.rev.to_string(), None)])
        .or_else([TxnOp::get(COMPACT_REV_KEY, None::<GetOptions>)]);
    let resp = call(client, ctx, |mut kv| {
        let txn = txn.clone();
        async move { kv.txn(txn).await }
    })
    .await?;
    let cur_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
    if !resp.succeeded() {
        let cur_time = resp
            .op_responses()
            .into_iter()
            .find_map(|o| match o {
                TxnOpResponse::Get(g) => g.kvs().first().map(|k| k.version()),
                _ => None,
            })
            .unwrap_or(0);
        return Ok((
            State {
                time: cur_time,
                rev: cur_rev,
            },
            Round::Lost,
        ));
    }
    let next = State {
        time: s.time + 1,
        rev: cur_rev,
    };
    if s.rev == 0 {
        // We don't compact on bootstrap.
        return Ok((next, Round::Bootstrap));
    }
    let to = s.rev;
    match call(
        client,
        ctx,
        |mut kv| async move { kv.compact(to, None).await },
    )
    .await
    {
        Ok(_) => {}
        // already compacted further (by hand, or by an older compactor): the goal is met
        Err(crate::Error::Compacted { .. }) => {}
        Err(e) => {
            tracing::warn!("etcd: compaction to revision {} failed: {e}", s.rev);
            return Ok((next, Round::Failed));
        }
    }
    tracing::debug!(revision = s.rev, "etcd: compacted");
    Ok((next, Round::Compacted(s.rev)))
}

/// Runs the compactor until the task is aborted. The first round happens after one interval.
pub(crate) fn start(
    client: Client,
    ctx: Arc<Context>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut s = State::default();
        loop {
            tokio::time::sleep(interval).await;
            match round(&client, &ctx, s).await {
                Ok((next, _)) => s = next,
                Err(e) => tracing::warn!("etcd compaction failed: {e}"),
            }
        }
    })
}
