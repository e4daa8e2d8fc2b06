//! Bytes relayed both ways between two streams (a TCP tunnel, a websocket
//! after its upgrade), ended by either side or, with the route's
//! `idle_timeout`, by silence. A leaf: tunnels and websockets both use it.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Relays until both directions have ended; with `idle`, also ends (as an
/// error) when nothing moves either way for that long.
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
    let (mut to_b, mut to_a) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        tokio::select! {
            n = ar.read(&mut to_b), if a_open => match n? {
                0 => { a_open = false; bw.shutdown().await?; }
                n => bw.write_all(&to_b[..n]).await?,
            },
            n = br.read(&mut to_a), if b_open => match n? {
                0 => { b_open = false; aw.shutdown().await?; }
                n => aw.write_all(&to_a[..n]).await?,
            },
            _ = tokio::time::sleep(idle) => {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "idle_timeout"));
            }
        }
    }
    Ok(())
}
