//! All watches of one store on one etcd gRPC watch stream.
//!
//! Each [`Datastore::watch`](crate::Datastore::watch) is a watch ID on the stream (etcd 3.4+
//! accepts the ID from the client), so a thousand API watches are one stream on one HTTP/2
//! connection, not a thousand connections. One task owns the stream: it creates and cancels watch
//! IDs, routes each response to its watcher, and when the stream breaks (its member died, or lost
//! the leader) opens it again through the client's balancer and re-creates every watch from the
//! revision after the last one it delivered. etcd then replays what was missed, or cancels the
//! watch with a compact revision, which the watcher receives as [`Error::Compacted`].
//!
//! A watcher that does not keep up (its buffer of [`WATCH_BUFFER`] events is full) is cancelled:
//! its stream ends and it lists again, as with the embedded store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions, WatchRequestSender, WatchResponseStream};
use tokio::sync::{mpsc, oneshot};

use super::{prefix_end, timed, Context, Keys, MAX_MESSAGE, REQUEST_TIMEOUT};
use crate::{Error, Event, Result, Revision, Watch};

/// Events buffered per watcher before a slow watcher is dropped (it re-lists); the same bound as
/// the embedded stores' hub.
pub use crate::hub::WATCH_BUFFER;
/// How often closed watchers are looked for (their watch IDs are cancelled in etcd).
const SWEEP: Duration = Duration::from_secs(10);
/// The pause before opening a broken stream again.
const RETRY: Duration = Duration::from_millis(500);

struct Add {
    key: Vec<u8>,
    after: Revision,
    reply: oneshot::Sender<Result<Watch>>,
}

/// The handle the store keeps; the task ends when it is dropped.
pub(crate) struct WatchMux {
    cmds: mpsc::UnboundedSender<Add>,
}

/// Where to answer `watch`, and the receiving end to hand over.
type Pending = (
    oneshot::Sender<Result<Watch>>,
    mpsc::Receiver<Result<Event>>,
);

struct Watcher {
    key: Vec<u8>,
    /// The revision to (re)start from: one past the last delivered event.
    next: i64,
    tx: mpsc::Sender<Result<Event>>,
    /// Until etcd confirms the watch: where to answer, and the receiving end to hand over.
    pending: Option<Pending>,
}

impl Watcher {
    fn options(&self, id: i64) -> WatchOptions {
        WatchOptions::new()
            .with_range(prefix_end(&self.key))
            .with_start_revision(self.next)
            .with_prev_key()
            .with_watch_id(id)
    }

    /// Ends this watcher with `err` (as the answer to `watch`, or as the last event).
    fn fail(self, err: Error) {
        match self.pending {
            Some((reply, _)) => {
                let _ = reply.send(Err(err));
            }
            None => {
                let _ = self.tx.try_send(Err(err));
            }
        }
    }
}

impl WatchMux {
    pub(crate) fn start(client: Client, keys: Keys, ctx: Arc<Context>) -> WatchMux {
        let (cmds, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, keys, ctx, rx));
        WatchMux { cmds }
    }

    /// Adds a watch of every key starting with `key` (an etcd key) after revision `after`.
    pub(crate) async fn watch(&self, key: Vec<u8>, after: Revision) -> Result<Watch> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Add { key, after, reply })
            .map_err(|_| Error::Unavailable {
                message: "the etcd watch stream is closed".into(),
            })?;
        match tokio::time::timeout(REQUEST_TIMEOUT * 2, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::Unavailable {
                message: "the etcd watch stream is closed".into(),
            }),
            Err(_) => Err(Error::Unavailable {
                message: "etcd did not confirm the watch in time: check that etcd has quorum"
                    .into(),
            }),
        }
    }
}

fn event(keys: &Keys, e: &etcd_client::Event) -> Option<Event> {
    let kv = keys.kv(e.kv()?);
    let prev = e.prev_kv().map(|p| keys.kv(p));
    Some(match e.event_type() {
        EventType::Put => Event::Put { kv, prev },
        EventType::Delete => Event::Delete {
            revision: kv.mod_revision,
            prev: prev.unwrap_or(kv),
        },
    })
}

enum Step {
    Cmd(Option<Add>),
    Msg(std::result::Result<Option<etcd_client::WatchResponse>, etcd_client::Error>),
    Sweep,
    Retry,
}

async fn next_msg(
    s: &mut Option<WatchResponseStream>,
) -> std::result::Result<Option<etcd_client::WatchResponse>, etcd_client::Error> {
    match s {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

/// Opens the stream with every watcher on it.
async fn open(
    client: &Client,
    ctx: &Context,
    watchers: &BTreeMap<i64, Watcher>,
) -> Result<(WatchRequestSender, WatchResponseStream)> {
    let mut it = watchers.iter();
    let Some((id, first)) = it.next() else {
        return Err(Error::Backend {
            message: "no watch to open".into(),
        });
    };
    let mut wc = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    let stream = timed(ctx, wc.watch(first.key.clone(), Some(first.options(*id)))).await?;
    let (mut sender, responses) = stream.split();
    for (id, w) in it {
        sender
            .watch(w.key.clone(), Some(w.options(*id)))
            .await
            .map_err(|e| ctx.error(e))?;
    }
    Ok((sender, responses))
}

async fn run(
    client: Client,
    keys: Keys,
    ctx: Arc<Context>,
    mut cmds: mpsc::UnboundedReceiver<Add>,
) {
    let mut watchers: BTreeMap<i64, Watcher> = BTreeMap::new();
    let mut next_id: i64 = 1;
    let mut sender: Option<WatchRequestSender> = None;
    let mut responses: Option<WatchResponseStream> = None;
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut broken = false;
    loop {
        if responses.is_none() && !watchers.is_empty() && !broken {
            match open(&client, &ctx, &watchers).await {
                Ok((s, r)) => {
                    sender = Some(s);
                    responses = Some(r);
                }
                Err(e) => {
                    tracing::warn!("etcd watch stream: {e}; retrying");
                    broken = true;
                }
            }
        }
        let step = tokio::select! {
            c = cmds.recv() => Step::Cmd(c),
            m = next_msg(&mut responses) => Step::Msg(m),
            _ = sweep.tick() => Step::Sweep,
            _ = tokio::time::sleep(RETRY), if broken => Step::Retry,
        };
        match step {
            Step::Cmd(None) => return,
            Step::Cmd(Some(add)) => {
                let id = next_id;
                next_id += 1;
                let (tx, rx) = mpsc::channel(WATCH_BUFFER);
                let w = Watcher {
                    key: add.key,
                    next: add.after as i64 + 1,
                    tx,
                    pending: Some((add.reply, rx)),
                };
                if let Some(s) = sender.as_mut() {
                    if let Err(e) = s.watch(w.key.clone(), Some(w.options(id))).await {
                        tracing::warn!("etcd watch stream: {}; reopening", ctx.error(e));
                        sender = None;
                        responses = None;
                    }
                }
                watchers.insert(id, w);
            }
            Step::Retry => broken = false,
            Step::Sweep => {
                let closed: Vec<i64> = watchers
                    .iter()
                    .filter(|(_, w)| w.pending.is_none() && w.tx.is_closed())
                    .map(|(id, _)| *id)
                    .collect();
                for id in closed {
                    watchers.remove(&id);
                    if let Some(s) = sender.as_mut() {
                        let _ = s.cancel(id).await;
                    }
                }
            }
            Step::Msg(Ok(Some(resp))) => {
                let id = resp.watch_id();
                let mut cancel = false;
                if let Some(w) = watchers.get_mut(&id) {
                    if resp.compact_revision() > 0 {
                        if let Some(w) = watchers.remove(&id) {
                            let requested = (w.next - 1).max(0) as u64;
                            w.fail(Error::Compacted {
                                requested,
                                oldest: resp.compact_revision() as u64,
                            });
                        }
                        continue;
                    }
                    if resp.canceled() {
                        if let Some(w) = watchers.remove(&id) {
                            let reason = resp.cancel_reason().to_string();
                            let err =
                                ctx.error(etcd_client::Error::WatchError(if reason.is_empty() {
                                    "watch cancelled by etcd".into()
                                } else {
                                    reason
                                }));
                            w.fail(err);
                        }
                        continue;
                    }
                    if let Some((reply, rx)) = w.pending.take() {
                        if reply.send(Ok(Watch { events: rx })).is_err() {
                            // the caller gave up waiting
                            cancel = true;
                        }
                    }
                    for e in resp.events() {
                        let Some(ev) = event(&keys, e) else { continue };
                        w.next = ev.revision() as i64 + 1;
                        if w.tx.try_send(Ok(ev)).is_err() {
                            // full (a slow watcher re-lists) or closed
                            cancel = true;
                            break;
                        }
                    }
                }
                if cancel {
                    watchers.remove(&id);
                    if let Some(s) = sender.as_mut() {
                        let _ = s.cancel(id).await;
                    }
                }
            }
            Step::Msg(end) => {
                match end {
                    Err(e) => {
                        tracing::warn!("etcd watch stream broke: {}; reopening", ctx.error(e))
                    }
                    Ok(_) => tracing::warn!("etcd watch stream ended; reopening"),
                }
                sender = None;
                responses = None;
                // give the balancer a moment to notice a dead member
                broken = true;
            }
        }
    }
}
