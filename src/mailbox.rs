//! Actor mailboxes whose configured capacity really holds.
//!
//! actix 0.13 bounds a mailbox only for `try_send`: `Addr::send` on a full
//! mailbox hands the message to a cloned sender that enqueues it anyway
//! (actix/actix#329), and `do_send` ignores the bound. So the bound is kept
//! here instead, by a semaphore of `capacity` permits: a message takes a
//! permit ([`Slot`]) before it is queued and gives it back when its handler
//! starts, or when the actor drops it unhandled. The depth gauge is then the
//! number of permits out, the true queue length, whoever sent.
//!
//! Every send into the RoomRegistry, the PresenceTracker and the RedisBridge
//! goes through a [`Mailbox`] (the actor's own address) or a [`Peer`] (one
//! message type, for an actor that must not know the receiver's type). A
//! sender either gives up at once when the mailbox is full ([`Full`]: the
//! caller answers `UNAVAILABLE` or counts a drop) or waits for room
//! ([`Mailbox::tell`]: for what must not be lost, such as a session's
//! cleanup; the waiters queue outside the mailbox, in order).
//!
//! An actor behind a bound mailbox handles [`Tracked`] messages; the
//! [`bounded_mailbox!`](crate::bounded_mailbox) macro writes that handler
//! once per actor, forwarding to its ordinary handlers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::dev::{channel, MessageResponse, OneshotSender, ToEnvelope};
use actix::prelude::*;
use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A mailbox's room: `capacity` permits, one per queued message.
#[derive(Clone)]
pub struct Bound {
    permits: Arc<Semaphore>,
    capacity: usize,
    refused: Arc<AtomicU64>,
}

/// The mailbox is full; nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub capacity: usize,
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mailbox full ({} messages waiting)", self.capacity)
    }
}

/// One message's place in a mailbox, held until its handler starts.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Bound {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Bound {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            refused: Arc::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Messages queued (or reserved and about to be): never above capacity.
    pub fn depth(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    /// Sends refused because the mailbox was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A place now, or [`Full`].
    pub fn try_slot(&self) -> Result<Slot, Full> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(Slot(permit)),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(Full {
                    capacity: self.capacity,
                })
            }
        }
    }

    /// A place now if there is one, not counted as a refusal.
    fn free_slot(&self) -> Option<Slot> {
        self.permits.clone().try_acquire_owned().ok().map(Slot)
    }

    /// A place once there is one; waiters are served in order.
    pub fn slot(&self) -> impl Future<Output = Slot> + Send + 'static {
        let permits = self.permits.clone();
        async move {
            // The semaphore is never closed.
            Slot(permits.acquire_owned().await.expect("mailbox semaphore"))
        }
    }
}

/// A message with its place in the mailbox; the place is given back when
/// the handler takes the message out ([`Tracked::open`]).
pub struct Tracked<M> {
    msg: M,
    _slot: Slot,
}

impl<M: Message> Message for Tracked<M> {
    type Result = M::Result;
}

impl<M> Tracked<M> {
    pub fn open(self) -> M {
        self.msg
    }
}

/// The answer of a [`Tracked`] message: its inner handler's answer.
pub struct Forward<R>(pub R);

impl<A, M, R> MessageResponse<A, Tracked<M>> for Forward<R>
where
    A: Actor,
    M: Message,
    R: MessageResponse<A, M>,
{
    fn handle(self, ctx: &mut A::Context, tx: Option<OneshotSender<M::Result>>) {
        self.0.handle(ctx, tx)
    }
}

/// Makes an actor take [`Tracked`] messages: each is opened (its mailbox
/// place given back) and handled by the actor's handler for the inner type.
#[macro_export]
macro_rules! bounded_mailbox {
    ($actor:ty) => {
        impl<M> ::actix::Handler<$crate::mailbox::Tracked<M>> for $actor
        where
            M: ::actix::Message,
            $actor: ::actix::Handler<M>,
        {
            type Result = $crate::mailbox::Forward<<$actor as ::actix::Handler<M>>::Result>;
            fn handle(
                &mut self,
                msg: $crate::mailbox::Tracked<M>,
                ctx: &mut <$actor as ::actix::Actor>::Context,
            ) -> Self::Result {
                $crate::mailbox::Forward(<$actor as ::actix::Handler<M>>::handle(
                    self,
                    msg.open(),
                    ctx,
                ))
            }
        }
    };
}

/// An actor's address behind its bound.
pub struct Mailbox<A: Actor> {
    addr: Addr<A>,
    bound: Bound,
}

impl<A: Actor> Clone for Mailbox<A> {
    fn clone(&self) -> Self {
        Mailbox {
            addr: self.addr.clone(),
            bound: self.bound.clone(),
        }
    }
}

/// A mailbox whose actor is not running yet (see [`Mailbox::reserve`]).
pub struct Unstarted<A: Actor<Context = Context<A>>> {
    rx: channel::AddressReceiver<A>,
}

impl<A: Actor<Context = Context<A>>> Unstarted<A> {
    /// Starts the actor on its own thread (arbiter), reading this mailbox.
    pub fn start(self, make: impl FnOnce(&mut Context<A>) -> A + Send + 'static) {
        let rx = self.rx;
        let started = Arbiter::new().spawn_fn(move || {
            let mut ctx = Context::with_receiver(rx);
            let actor = make(&mut ctx);
            actix::spawn(ctx.into_future(actor));
        });
        assert!(started, "a new arbiter takes work");
    }
}

impl<A: Actor<Context = Context<A>>> Mailbox<A> {
    /// A mailbox for an actor started later, so that actors which send to
    /// each other can each be given the other's address when they start.
    pub fn reserve(capacity: usize) -> (Self, Unstarted<A>) {
        let bound = Bound::new(capacity);
        // actix's own bound is never reached: the permits are fewer.
        let (tx, rx) = channel::channel(bound.capacity() + 1);
        let mailbox = Mailbox {
            addr: Addr::new(tx),
            bound,
        };
        (mailbox, Unstarted { rx })
    }

    /// Starts `make`'s actor on its own thread behind a mailbox of `capacity`.
    pub fn start(
        capacity: usize,
        make: impl FnOnce(&mut Context<A>) -> A + Send + 'static,
    ) -> Self {
        let (mailbox, unstarted) = Self::reserve(capacity);
        unstarted.start(make);
        mailbox
    }
}

impl<A: Actor> Mailbox<A> {
    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    /// Sends `msg` if there is room; the request answers the handler's result.
    pub fn ask<M>(&self, msg: M) -> Result<Request<A, Tracked<M>>, Full>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        let slot = self.bound.try_slot()?;
        Ok(self.addr.send(Tracked { msg, _slot: slot }))
    }

    /// Queues `msg` if there is room, for no answer.
    pub fn try_tell<M>(&self, msg: M) -> Result<(), Full>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        let slot = self.bound.try_slot()?;
        self.tell_in(slot, msg);
        Ok(())
    }

    /// Queues `msg` in a place taken before (see [`Bound::slot`]).
    pub fn tell_in<M>(&self, slot: Slot, msg: M)
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        self.addr.do_send(Tracked { msg, _slot: slot });
    }

    /// Queues `msg` now if there is room (None), or hands back the wait
    /// for room (Some), to spawn or await: for what must not be lost.
    /// Queued at once in the common case, so the order of calls is kept.
    pub fn tell<M>(&self, msg: M) -> Option<impl Future<Output = ()> + Send + 'static>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        if let Some(slot) = self.bound.free_slot() {
            self.tell_in(slot, msg);
            return None;
        }
        let (slot, mailbox) = (self.bound.slot(), self.clone());
        Some(async move { mailbox.tell_in(slot.await, msg) })
    }

    /// Sends `msg` once there is room and answers the handler's result:
    /// for requests that must not be refused (following a room, admin
    /// gathering, shutdown). Sent at once when there is room.
    pub fn ask_in_turn<M>(&self, msg: M) -> BoxFuture<'static, Result<M::Result, MailboxError>>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        if let Some(slot) = self.bound.free_slot() {
            return Box::pin(self.addr.send(Tracked { msg, _slot: slot }));
        }
        let (slot, addr) = (self.bound.slot(), self.addr.clone());
        Box::pin(async move {
            addr.send(Tracked {
                msg,
                _slot: slot.await,
            })
            .await
        })
    }

    /// A sender of one message type into this mailbox, for an actor that
    /// must not depend on this one's type.
    pub fn peer<M>(&self) -> Peer<M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        A: Handler<Tracked<M>>,
        A::Context: ToEnvelope<A, Tracked<M>>,
    {
        Peer {
            to: self.addr.clone().recipient(),
            bound: self.bound.clone(),
        }
    }
}

/// One message type's way into a bound mailbox.
pub struct Peer<M: Message + Send>
where
    M::Result: Send,
{
    to: Recipient<Tracked<M>>,
    bound: Bound,
}

impl<M: Message + Send> Clone for Peer<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        Peer {
            to: self.to.clone(),
            bound: self.bound.clone(),
        }
    }
}

impl<M: Message + Send + 'static> Peer<M>
where
    M::Result: Send,
{
    /// Queues `msg` now if there is room (None), or hands back the wait for
    /// room (see [`Mailbox::tell`]).
    pub fn tell(&self, msg: M) -> Option<impl Future<Output = ()> + Send + 'static> {
        if let Some(slot) = self.bound.free_slot() {
            self.to.do_send(Tracked { msg, _slot: slot });
            return None;
        }
        let (slot, to) = (self.bound.slot(), self.to.clone());
        Some(async move {
            to.do_send(Tracked {
                msg,
                _slot: slot.await,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sleeps on each message, so its mailbox fills.
    struct Slow {
        seen: Arc<AtomicU64>,
    }
    impl Actor for Slow {
        type Context = Context<Self>;
    }
    #[derive(Message)]
    #[rtype(result = "u64")]
    struct Work;
    impl Handler<Work> for Slow {
        type Result = u64;
        fn handle(&mut self, _: Work, _: &mut Context<Self>) -> u64 {
            std::thread::sleep(Duration::from_millis(2));
            self.seen.fetch_add(1, Ordering::Relaxed) + 1
        }
    }
    crate::bounded_mailbox!(Slow);

    #[actix_rt::test]
    async fn depth_never_exceeds_capacity_and_refusals_are_answered() {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let mailbox = Mailbox::start(4, move |_| Slow { seen: counter });
        let mut answers = Vec::new();
        let mut refused = 0;
        for _ in 0..200 {
            assert!(mailbox.bound().depth() <= 4);
            match mailbox.ask(Work) {
                Ok(request) => answers.push(request),
                Err(full) => {
                    assert_eq!(full.capacity, 4);
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "a slow actor's mailbox of 4 fills");
        assert_eq!(mailbox.bound().refused(), refused);
        let accepted = answers.len();
        for request in answers {
            request.await.expect("every queued message is handled");
        }
        assert_eq!(seen.load(Ordering::Relaxed), accepted as u64);
        assert_eq!(mailbox.bound().depth(), 0, "every place given back");
    }

    #[actix_rt::test]
    async fn tell_waits_for_room_instead_of_overfilling() {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let mailbox = Mailbox::start(2, move |_| Slow { seen: counter });
        let waits: Vec<_> = (0..50)
            .filter_map(|_| mailbox.tell(Work))
            .map(actix::spawn)
            .collect();
        assert!(!waits.is_empty(), "a mailbox of 2 makes the rest wait");
        for _ in 0..20 {
            assert!(mailbox.bound().depth() <= 2);
            actix_rt::time::sleep(Duration::from_millis(3)).await;
        }
        for wait in waits {
            wait.await.unwrap();
        }
        // The last ones are queued; give the actor time to take them.
        for _ in 0..100 {
            if seen.load(Ordering::Relaxed) == 50 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen.load(Ordering::Relaxed), 50, "nothing lost");
        assert_eq!(mailbox.bound().refused(), 0);
    }

    #[actix_rt::test]
    async fn a_stopped_actor_gives_its_places_back() {
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let mailbox = Mailbox::start(8, move |ctx: &mut Context<Slow>| {
            ctx.stop();
            Slow { seen: counter }
        });
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        let _ = mailbox.try_tell(Work);
        actix_rt::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(mailbox.bound().depth(), 0);
    }
}
