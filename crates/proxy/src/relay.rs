//! Bytes relayed both ways between two streams (a TCP tunnel, a websocket
//! after its upgrade), ended by either side or, with the route's
//! `idle_timeout`, by silence. A leaf: tunnels and websockets both use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Relays until both directions have ended; with `idle`, also ends (as an
/// error) when no byte moves either way for that long. A byte moves when
/// it is read from one side or written to the other, so a peer that stops
/// reading stalls its direction and, once the other is quiet too, ends the
/// relay (as Envoy's stream idle timeout does under back-pressure). The
/// two directions run independently: one side's slow reading never holds
/// up the other direction.
pub(crate) async fn relay<A, B>(mut a: A, mut b: B, idle: Option<Duration>) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        return tokio::io::copy_bidirectional(&mut a, &mut b)
            .await
            .map(drop);
    };
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let start = Instant::now();
    // Nanoseconds after `start` of the last byte moved either way.
    let last = AtomicU64::new(0);
    let moved = || {
        let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        last.store(now, Ordering::Relaxed);
    };
    let both = async {
        tokio::try_join!(
            one_way(&mut ar, &mut bw, &moved),
            one_way(&mut br, &mut aw, &moved)
        )
        .map(drop)
    };
    let watchdog = async {
        loop {
            let quiet_until = start + Duration::from_nanos(last.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= quiet_until {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "idle_timeout",
                ));
            }
            tokio::time::sleep_until(quiet_until).await;
        }
    };
    tokio::select! {
        r = both => r,
        r = watchdog => r,
    }
}

/// Copies `from` into `to` until `from` ends, then shuts `to`'s writing
/// side (a half-close reaches the other end). Every read and every write
/// that moves bytes is reported to `moved`.
async fn one_way<R, W>(from: &mut R, to: &mut W, moved: &impl Fn()) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        moved();
        let mut sent = 0;
        while sent < n {
            let w = to.write(&buf[sent..n]).await?;
            if w == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            sent += w;
            moved();
        }
        to.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_reading_ends_the_relay_at_the_idle_timeout() {
        // a <-> relay <-> b; the far end of `b` writes a lot and the far
        // end of `a` never reads: the relay stalls, then ends.
        let (a_near, _a_far) = duplex(1024);
        let (b_near, mut b_far) = duplex(1024);
        let relay = tokio::spawn(relay(a_near, b_near, Some(Duration::from_secs(5))));
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; 1024];
            loop {
                if b_far.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let ended = tokio::time::timeout(Duration::from_secs(60), relay).await;
        let result = ended.expect("the relay outlived its idle timeout").unwrap();
        assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        writer.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn one_slow_direction_does_not_hold_up_the_other() {
        // `a`'s far end never reads what `b` sends, yet bytes from `a` to
        // `b` keep flowing.
        let (a_near, mut a_far) = duplex(64);
        let (b_near, b_far) = duplex(64);
        let _relay = tokio::spawn(relay(a_near, b_near, Some(Duration::from_secs(5))));
        let (mut b_read, mut b_write) = tokio::io::split(b_far);
        // Far more than the pipes hold: the b-to-a direction is stuck.
        let _stuck = tokio::spawn(async move { b_write.write_all(&[1u8; 4096]).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..100u8 {
            a_far.write_all(&[i]).await.unwrap();
            let mut got = [0u8; 1];
            b_read.read_exact(&mut got).await.unwrap();
            assert_eq!(got[0], i);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn talk_keeps_it_open_and_half_closes_pass_through() {
        let (a_near, mut a_far) = duplex(1024);
        let (b_near, mut b_far) = duplex(1024);
        let relay = tokio::spawn(relay(a_near, b_near, Some(Duration::from_secs(5))));
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            a_far.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            b_far.read_exact(&mut got).await.unwrap();
        }
        a_far.shutdown().await.unwrap();
        let mut rest = Vec::new();
        b_far.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        b_far.write_all(b"bye").await.unwrap();
        b_far.shutdown().await.unwrap();
        let mut got = Vec::new();
        a_far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        relay.await.unwrap().unwrap();
    }
}
