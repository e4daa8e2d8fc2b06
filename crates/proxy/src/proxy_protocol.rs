//! `use_proxy_protocol`: the PROXY protocol header (v1 text or v2 binary)
//! a load balancer in front sends before the connection's first byte, read
//! to learn the client's address. With the setting on, every connection
//! must start with one (as Envoy's listener filter): one without it, or
//! with a malformed one, is closed before anything else is read.
//!
//! Read without reading past the header: v1 byte by byte up to its CRLF
//! (at most 107 bytes), v2 by its length (at most [`MAX_V2`] bytes of
//! addresses and TLVs). The whole header must arrive within `timeout_read`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included.
const MAX_V1: usize = 107;
/// The most v2 address and TLV bytes accepted.
pub const MAX_V2: usize = 4096;

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The client's address (source) as the balancer saw it.
    Proxied(SocketAddr),
    /// `UNKNOWN` (v1), `LOCAL` or an unspecified family (v2): the
    /// connection is the balancer's own (a health check); keep its address.
    Local,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    #[error("PROXY protocol header longer than {MAX_V2} bytes")]
    TooLong,
}

/// Reads the header from the start of `io`.
pub async fn read<R: AsyncRead + Unpin>(io: &mut R) -> Result<Header, ProxyHeaderError> {
    let mut start = [0u8; 12];
    io.read_exact(&mut start)
        .await
        .map_err(|_| ProxyHeaderError::Missing)?;
    if start == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        io.read_exact(&mut fixed)
            .await
            .map_err(|_| ProxyHeaderError::Malformed("truncated"))?;
        let len = u16::from_be_bytes([fixed[2], fixed[3]]) as usize;
        if len > MAX_V2 {
            return Err(ProxyHeaderError::TooLong);
        }
        let mut rest = vec![0u8; len];
        io.read_exact(&mut rest)
            .await
            .map_err(|_| ProxyHeaderError::Malformed("truncated"))?;
        return parse_v2(fixed[0], fixed[1], &rest);
    }
    if !start.starts_with(b"PROXY ") {
        return Err(ProxyHeaderError::Missing);
    }
    let mut line = start.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= MAX_V1 {
            return Err(ProxyHeaderError::Malformed("v1 line too long"));
        }
        let b = io
            .read_u8()
            .await
            .map_err(|_| ProxyHeaderError::Malformed("truncated"))?;
        line.push(b);
    }
    parse_v1(&line[..line.len() - 2])
}

/// `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>` or `PROXY UNKNOWN ...`.
fn parse_v1(line: &[u8]) -> Result<Header, ProxyHeaderError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::Malformed("not text"))?;
    let mut parts = text.split(' ');
    let (Some("PROXY"), Some(family)) = (parts.next(), parts.next()) else {
        return Err(ProxyHeaderError::Malformed("v1"));
    };
    if family == "UNKNOWN" {
        return Ok(Header::Local);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(ProxyHeaderError::Malformed("v1 needs four fields"));
    };
    let ip: IpAddr = match family {
        "TCP4" => src
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ProxyHeaderError::Malformed("v1 address"))?,
        "TCP6" => src
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ProxyHeaderError::Malformed("v1 address"))?,
        _ => return Err(ProxyHeaderError::Malformed("v1 family")),
    };
    // Ports are decimal without leading zeros or signs.
    let port = (!sport.is_empty() && sport.bytes().all(|b| b.is_ascii_digit()) && sport.len() <= 5)
        .then(|| sport.parse::<u16>().ok())
        .flatten()
        .ok_or(ProxyHeaderError::Malformed("v1 port"))?;
    Ok(Header::Proxied(SocketAddr::new(ip, port)))
}

fn parse_v2(ver_cmd: u8, fam: u8, rest: &[u8]) -> Result<Header, ProxyHeaderError> {
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed("v2 version"));
    }
    match ver_cmd & 0x0f {
        0 => return Ok(Header::Local),
        1 => {}
        _ => return Err(ProxyHeaderError::Malformed("v2 command")),
    }
    match fam {
        // TCP over IPv4: src(4) dst(4) sport(2) dport(2).
        0x11 => {
            let a = rest
                .get(..12)
                .ok_or(ProxyHeaderError::Malformed("v2 addresses"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Ok(Header::Proxied(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        // TCP over IPv6: src(16) dst(16) sport(2) dport(2).
        0x21 => {
            let a = rest
                .get(..36)
                .ok_or(ProxyHeaderError::Malformed("v2 addresses"))?;
            let mut src = [0u8; 16];
            src.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Ok(Header::Proxied(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(src)),
                port,
            )))
        }
        // Unspecified (or UDP/unix, which a TCP listener does not carry
        // for a client): the balancer's own connection.
        0x00 => Ok(Header::Local),
        _ => Err(ProxyHeaderError::Malformed("v2 family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Header, ProxyHeaderError>, Vec<u8>) {
        let mut io = bytes;
        let h = read(&mut io).await;
        (h, io.to_vec())
    }

    #[tokio::test]
    async fn v1_and_v2_headers_and_nothing_past_them() {
        let (h, rest) =
            parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(h, Ok(Header::Proxied("203.0.113.7:51234".parse().unwrap())));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (h, _) = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n").await;
        assert_eq!(
            h,
            Ok(Header::Proxied("[2001:db8::7]:4000".parse().unwrap()))
        );
        let (h, rest) = parse(b"PROXY UNKNOWN\r\n\x16\x03").await;
        assert_eq!(h, Ok(Header::Local));
        assert_eq!(rest, b"\x16\x03");

        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12 + 3]);
        v2.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 1, 0x1f, 0x90, 1, 187]);
        v2.extend_from_slice(&[0xEE, 0, 0]); // a TLV, skipped
        v2.extend_from_slice(b"\x16\x03\x01");
        let (h, rest) = parse(&v2).await;
        assert_eq!(h, Ok(Header::Proxied("198.51.100.9:8080".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).await.0, Ok(Header::Local));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 443\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4",
        ] {
            assert!(parse(bad).await.0.is_err(), "{bad:?}");
        }
        let long = format!("PROXY TCP4 {} 5.6.7.8 1 2\r\n", "1".repeat(200));
        assert!(parse(long.as_bytes()).await.0.is_err());
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&v2).await.0, Err(ProxyHeaderError::TooLong));
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x31, 0x11, 0, 12]);
        v2.extend_from_slice(&[0; 12]);
        assert!(parse(&v2).await.0.is_err(), "version 3");
    }
}
