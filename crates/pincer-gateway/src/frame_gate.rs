//! Refuses an oversized WebSocket frame at its header, before a byte of its payload is read.
//!
//! tungstenite checks `max_frame_size` at the header too, but tokio-tungstenite fixes its config
//! when the stream is built and cannot lower it before `hello-ok` and raise it after. So the
//! socket is read through a [`FrameGate`]: it follows the frame headers in the byte stream (2 to
//! 14 bytes each; payloads are skipped, never copied) and fails the read with [`FrameTooLarge`]
//! when a frame, or the message it continues, declares more than the current [`FrameLimit`].
//! The limit is 64 KiB until the handshake raises it to `maxPayload`.
//!
//! A header over the limit is held back, with whatever was read after it, until the reader asks
//! for those bytes; the limit is checked again at that moment. A `connect` frame and a large
//! request the client sent right behind it therefore behave the same whether or not they arrived
//! in one TCP read: the request is read after `hello-ok`, under the raised limit.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest frame (and message) the gateway reads now; shared by the gate and the handshake.
#[derive(Debug, Clone)]
pub struct FrameLimit(Arc<AtomicUsize>);

impl FrameLimit {
    pub fn new(bytes: usize) -> FrameLimit {
        FrameLimit(Arc::new(AtomicUsize::new(bytes)))
    }

    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Release);
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// A frame or message declared more bytes than the limit allowed when it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame too large: {size} bytes declared, limit {limit}")]
pub struct FrameTooLarge {
    pub size: u64,
    pub limit: u64,
}

impl FrameTooLarge {
    /// The gate's refusal, if `error` (as tungstenite returns it) is one.
    pub fn find(error: &io::Error) -> Option<FrameTooLarge> {
        error.get_ref().and_then(|e| e.downcast_ref::<FrameTooLarge>()).copied()
    }
}

/// A client-to-server byte stream read through the frame-size check; writes pass straight through.
pub struct FrameGate<S> {
    inner: S,
    limit: FrameLimit,
    headers: HeaderTracker,
    /// Bytes read from the socket behind a header that was over the limit, not yet handed on.
    held: Vec<u8>,
    held_from: usize,
}

impl<S> FrameGate<S> {
    pub fn new(inner: S, limit: FrameLimit) -> FrameGate<S> {
        FrameGate { inner, limit, headers: HeaderTracker::default(), held: Vec::new(), held_from: 0 }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGate<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let limit = this.limit.get() as u64;
        if this.held_from < this.held.len() {
            let held = &this.held[this.held_from..];
            let offered = &held[..held.len().min(buf.remaining())];
            let passed = match this.headers.advance(offered, limit) {
                Ok(n) => n,
                Err(refused) if refused.passed > 0 => refused.passed,
                Err(refused) => return Poll::Ready(Err(refused.into())),
            };
            buf.put_slice(&offered[..passed]);
            this.held_from += passed;
            if this.held_from == this.held.len() {
                this.held = Vec::new();
                this.held_from = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = buf.filled().len() - before;
        if read == 0 {
            return Poll::Ready(Ok(()));
        }
        match this.headers.advance(&buf.filled()[before..], limit) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(refused) => {
                let passed = refused.passed;
                this.held.extend_from_slice(&buf.filled()[before + passed..]);
                buf.set_filled(before + passed);
                if passed == 0 { Poll::Ready(Err(refused.into())) } else { Poll::Ready(Ok(())) }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGate<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Where the byte stream stands: inside a header, or inside a payload.
#[derive(Debug)]
enum Position {
    Header { bytes: [u8; 14], len: usize },
    Payload { remaining: u64 },
}

/// Follows frame headers through the stream (RFC 6455 §5.2).
#[derive(Debug)]
struct HeaderTracker {
    at: Position,
    /// Payload bytes of the data message under way (its earlier fragments).
    message: u64,
}

impl Default for HeaderTracker {
    fn default() -> Self {
        HeaderTracker { at: Position::Header { bytes: [0; 14], len: 0 }, message: 0 }
    }
}

/// A header over the limit; `passed` bytes of the input before it may be handed on.
#[derive(Debug)]
struct Refused {
    passed: usize,
    too_large: FrameTooLarge,
}

impl From<Refused> for io::Error {
    fn from(r: Refused) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, r.too_large)
    }
}

/// Header length once its first two bytes are known: 2, plus 2 or 8 for an extended length,
/// plus 4 for a mask.
fn header_len(first_two: [u8; 2]) -> usize {
    let extended = match first_two[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if first_two[1] & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

fn payload_len(header: &[u8]) -> u64 {
    match header[1] & 0x7f {
        126 => u16::from_be_bytes([header[2], header[3]]) as u64,
        127 => u64::from_be_bytes(header[2..10].try_into().expect("eight length bytes")),
        n => n as u64,
    }
}

impl HeaderTracker {
    /// Follows `input`; `Ok(input.len())`, or the header over `limit` and how many bytes before
    /// its last byte may pass. Refused bytes are not consumed: offered again, they are checked
    /// again against the limit of that moment.
    fn advance(&mut self, input: &[u8], limit: u64) -> Result<usize, Refused> {
        let mut i = 0;
        while i < input.len() {
            match &mut self.at {
                Position::Payload { remaining } => {
                    let n = (*remaining).min((input.len() - i) as u64);
                    *remaining -= n;
                    i += n as usize;
                    if *remaining == 0 {
                        self.at = Position::Header { bytes: [0; 14], len: 0 };
                    }
                }
                Position::Header { bytes, len } => {
                    bytes[*len] = input[i];
                    let filled = *len + 1;
                    if filled < 2 || filled < header_len([bytes[0], bytes[1]]) {
                        *len = filled;
                        i += 1;
                        continue;
                    }
                    let header = &bytes[..filled];
                    let (fin, opcode, size) = (header[0] & 0x80 != 0, header[0] & 0x0f, payload_len(header));
                    let control = opcode & 0x08 != 0;
                    // A continuation adds to its message; a new data frame starts one.
                    let message = if control {
                        0
                    } else if opcode == 0 {
                        self.message.saturating_add(size)
                    } else {
                        size
                    };
                    let declared = size.max(message);
                    if declared > limit {
                        return Err(Refused { passed: i, too_large: FrameTooLarge { size: declared, limit } });
                    }
                    if !control {
                        self.message = if fin { 0 } else { message };
                    }
                    i += 1;
                    self.at = if size == 0 {
                        Position::Header { bytes: [0; 14], len: 0 }
                    } else {
                        Position::Payload { remaining: size }
                    };
                }
            }
        }
        Ok(input.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header declaring `len` payload bytes.
    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut h = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match len {
            0..=125 => h.push(0x80 | len as u8),
            126..=0xffff => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(0x80 | 127);
                h.extend_from_slice(&len.to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = header(fin, opcode, len as u64);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    #[test]
    fn frames_within_the_limit_pass_byte_by_byte_and_whole() {
        let stream: Vec<u8> =
            [frame(true, 1, 10), frame(true, 9, 4), frame(true, 2, 300), frame(true, 1, 70_000)].concat();
        let mut whole = HeaderTracker::default();
        assert_eq!(whole.advance(&stream, 70_000).unwrap(), stream.len());
        let mut bytewise = HeaderTracker::default();
        for b in &stream {
            assert_eq!(bytewise.advance(std::slice::from_ref(b), 70_000).unwrap(), 1);
        }
    }

    #[test]
    fn an_oversized_header_is_refused_before_its_payload_and_rechecked_later() {
        let small = frame(true, 1, 100);
        let big = header(true, 1, 25 * 1024 * 1024);
        let stream = [small.clone(), big.clone()].concat();
        let mut t = HeaderTracker::default();
        let refused = t.advance(&stream, 64 * 1024).unwrap_err();
        // Everything up to the big header's last byte passes; the header's size is reported.
        assert_eq!(refused.passed, small.len() + big.len() - 1);
        assert_eq!(refused.too_large, FrameTooLarge { size: 25 * 1024 * 1024, limit: 64 * 1024 });
        // Offered again under the same limit: refused again, nothing passes.
        assert_eq!(t.advance(&stream[refused.passed..], 64 * 1024).unwrap_err().passed, 0);
        // Under a raised limit the same bytes pass.
        assert_eq!(t.advance(&stream[refused.passed..], 26 * 1024 * 1024).unwrap(), 1);
    }

    #[test]
    fn fragments_count_toward_their_message_and_control_frames_do_not() {
        let mut t = HeaderTracker::default();
        let ok = [frame(false, 1, 40), frame(true, 9, 100), frame(false, 0, 40)].concat();
        assert_eq!(t.advance(&ok, 100).unwrap(), ok.len());
        let over = header(true, 0, 21);
        let refused = t.advance(&over, 100).unwrap_err();
        assert_eq!(refused.too_large.size, 101);
        // A finished message starts the count again.
        let mut t = HeaderTracker::default();
        let two = [frame(true, 1, 90), frame(true, 1, 90)].concat();
        assert_eq!(t.advance(&two, 100).unwrap(), two.len());
    }

    #[tokio::test]
    async fn the_gate_fails_the_read_at_the_header_and_passes_what_came_before() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let connect = frame(true, 1, 1_000);
        client.write_all(&[connect.clone(), header(true, 1, 25 << 20)].concat()).await.unwrap();
        let limit = FrameLimit::new(64 * 1024);
        let mut gate = FrameGate::new(server, limit.clone());
        let mut got = vec![0u8; connect.len()];
        gate.read_exact(&mut got).await.unwrap();
        assert_eq!(got, connect);
        // The big header passes up to its last byte, then the read fails.
        let big = header(true, 1, 25 << 20);
        let mut more = [0u8; 64];
        let n = gate.read(&mut more).await.unwrap();
        assert_eq!(&more[..n], &big[..big.len() - 1]);
        let err = gate.read(&mut more).await.unwrap_err();
        assert_eq!(FrameTooLarge::find(&err), Some(FrameTooLarge { size: 25 << 20, limit: 64 * 1024 }));
        // Raised (as after hello-ok), the held byte passes.
        limit.set(26 << 20);
        assert_eq!(gate.read(&mut more).await.unwrap(), 1);
        assert_eq!(more[0], big[big.len() - 1]);
    }
}
