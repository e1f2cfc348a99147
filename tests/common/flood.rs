//! Floods a room for the slow-consumer tests, paced by a reader that keeps
//! up, so that only clients that do not read can overflow their mailbox.

use serde_json::json;

use super::{Client, Closed, WAIT};

/// How many messages the publisher may be ahead of what the reader has
/// read: far below any `mailbox.session` the tests set, so the reader can
/// never be a slow consumer, however slow this machine is.
pub const MAX_UNCONFIRMED: u64 = 4;

/// Publishes `n` messages of `size` bytes into `room` from `publisher`,
/// each only once `reader` has read all but [`MAX_UNCONFIRMED`] of the
/// earlier ones. Returns the seqs the reader received, in order, and the
/// reader; panics, saying so, if the reader's connection ended.
pub async fn paced_flood(
    publisher: &mut Client,
    mut reader: Client,
    room: &str,
    n: u64,
    size: usize,
) -> (Vec<u64>, Client) {
    let (confirmed, mut read_so_far) = tokio::sync::watch::channel(0u64);
    let reading = actix_rt::spawn(async move {
        let mut seqs = Vec::with_capacity(n as usize);
        while (seqs.len() as u64) < n {
            match tokio::time::timeout(WAIT, reader.next_or_close()).await {
                Ok(Ok(frame)) if frame["type"] == "message:new" => {
                    seqs.push(frame["seq"].as_u64().unwrap());
                    confirmed.send_replace(seqs.len() as u64);
                }
                Ok(Ok(_)) => {}
                Ok(Err(end)) => return Err((seqs.len(), format!("{end:?}"))),
                Err(_) => return Err((seqs.len(), format!("nothing for {WAIT:?}"))),
            }
        }
        Ok((seqs, reader))
    });
    let content = "x".repeat(size);
    'publishing: for i in 0..n {
        while *read_so_far.borrow_and_update() + MAX_UNCONFIRMED < i {
            if read_so_far.changed().await.is_err() {
                break 'publishing; // the reader ended: its result says how
            }
        }
        let answer = publisher
            .request(json!({"type": "message:send", "room": room, "content": content}))
            .await;
        assert_eq!(answer["type"], "reply", "message {i} of {n}: {answer}");
    }
    match reading.await.unwrap() {
        Ok(done) => done,
        Err((got, end)) => panic!(
            "the reader that keeps up was itself ended ({end}) after {got} of {n} messages: \
             it must never be a slow consumer"
        ),
    }
}

/// Asserts how a client that overflowed its mailbox saw its connection end.
pub async fn assert_ended(client: &mut Client, expected: Closed, why: &str) {
    let end = client.closed(WAIT).await;
    assert_eq!(end, expected, "{why}");
}
